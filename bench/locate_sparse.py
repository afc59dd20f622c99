"""Benchmark: sparse coverage on the Pittsburgh live-fire data (issue #2 target 2).

Each test is cut to N random sensors among those that heard it (a sensor heard the test when
it is in any of the vendor's shot tuples; evaluation code only), seeded per test and trial.
Two cuts are measured:

* ``network`` (the headline): the N kept sensors plus every sensor in service that did NOT
  hear the test (it reported other impulses in the window). This is a sparse network: the
  sensors that heard it are reduced to N, the silent ones stay and are evidence (a 3-sensor
  set has two exact solutions; a silent sensor near one of them speaks against it).
* ``only_n``: nothing but the N kept sensors' pulses (no silence evidence at all).

Our own association runs on all pulses of the cut (echoes and noise included), with the
``propagation_error`` each held-out firing position gets from our own located shots at the
other positions on the full network (no truth; ``--no-calibrate`` for the default). A shot
counts as located when it is within 25 m; the share within 15 m is over the rounds fired.
The reference is our locator given the vendor's grouping cut to the same N sensors.

    PYTHONPATH=src:. python3 bench/locate_sparse.py --data ../shared/data/pittsburgh-2018
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.locate_pittsburgh import _c, _truth, calibrated_settings, own_shots, score_test
from shotwatch.core.model import Pulse, ShotLocation
from shotwatch.core.settings import Settings
from shotwatch.io.pittsburgh import TestData, read_tree
from shotwatch.location import locate


def _ambiguity(shots: list[ShotLocation], truth: np.ndarray) -> tuple[int, int]:
    """(ambiguous shots, of which the chosen solution is the one nearer the truth)."""
    amb = right = 0
    for s in shots:
        if not s.ambiguous or s.alternative_xy_m is None:
            continue
        amb += 1
        d_chosen = math.hypot(s.x_m - truth[0], s.y_m - truth[1])
        ax, ay = s.alternative_xy_m
        if d_chosen <= math.hypot(ax - truth[0], ay - truth[1]):
            right += 1
    return amb, right


def _tally(
    r: dict[str, int], shots: list[ShotLocation], truth: np.ndarray, rounds: int
) -> list[float]:
    """Add one test's scores to the counters ``r``; return the located rounds' errors."""
    sc = score_test(shots, truth, rounds)
    r["within15"] += sum(e <= 15.0 for e in sc["located"])
    r["located"] += len(sc["located"])
    r["spurious"] += sc["spurious"]
    a, ok = _ambiguity(shots, truth)
    r["ambiguous"] += a
    r["amb_right"] += ok
    return list(sc["located"])


def run_sparse(
    tests: list[TestData],
    settings: Settings | dict[str, Settings],
    dims: int,
    *,
    n: int,
    trials: int,
    seed: int,
) -> dict[str, Any]:
    """``settings``: one for all tests, or one per firing position (calibrated)."""
    res: dict[str, dict[str, Any]] = {
        cut: {"within15": 0, "located": 0, "spurious": 0, "ambiguous": 0, "amb_right": 0}
        for cut in ("network", "only_n", "reference")
    }
    fired = 0
    errs: dict[str, list[float]] = {"network": [], "only_n": [], "reference": []}
    for test in tests:
        fp_settings = (
            settings if isinstance(settings, Settings) else settings[test.name.split("/")[0]]
        )
        c = _c(test, fp_settings)
        truth, rounds, groups = _truth(test)
        by_id = {p.pulse_id: p for p in test.pulses}
        heard = sorted({by_id[u].sensor for g in groups for u in g if u in by_id})
        fired += rounds * trials
        if len(heard) < n:
            continue
        others = [s for s in test.sensors if s not in set(heard)]
        for k in range(trials):
            rng = random.Random(f"{seed}:{test.name}:{n}:{k}")
            keep = set(rng.sample(heard, n))
            for cut, allowed in (("network", keep | set(others)), ("only_n", keep)):
                pulses = [p for p in test.pulses if p.sensor in allowed]
                sensors = [s for s in test.sensors.values() if s.serial in allowed]
                shots = own_shots(pulses, sensors, fp_settings, c, dims)
                errs[cut] += _tally(res[cut], shots, truth, rounds)
            silent = [test.sensors[s] for s in others]
            ref_shots = []
            for g in groups:
                ps: list[Pulse] = [by_id[u] for u in g if u in by_id and by_id[u].sensor in keep]
                s = locate(
                    ps, c_mps=c, dims=dims, settings=fp_settings.location, silent_sensors=silent
                )
                if s is not None:
                    ref_shots.append(s)
            errs["reference"] += _tally(res["reference"], ref_shots, truth, rounds)
    out: dict[str, Any] = {"shots_fired": fired, "trials_per_test": trials}
    for cut, r in res.items():
        e = errs[cut]
        out[cut] = {
            "within_15m_pct": round(100.0 * r["within15"] / max(fired, 1), 2),
            "located_pct": round(100.0 * r["located"] / max(fired, 1), 2),
            "median_m": round(float(np.median(e)), 2) if e else None,
            "spurious_pct": round(100.0 * r["spurious"] / max(fired, 1), 2),
            "ambiguous_shots": r["ambiguous"],
            "ambiguous_chosen_nearer_truth": r["amb_right"],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--dims", type=int, default=None, choices=(2, 3))
    ap.add_argument("--trials", type=int, default=3, help="random cuts per test and N")
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--ns", default="3,4,5")
    ap.add_argument("--only", default=None, help="firing positions, e.g. FP1,FP3")
    ap.add_argument(
        "--no-calibrate",
        action="store_true",
        help="default propagation_error instead of the value each held-out firing position "
        "gets from our own located shots at the other positions (full network, no truth)",
    )
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(json.dumps({"error": f"data folder not found: {args.data}"}))
        return 2
    settings = Settings()
    dims = args.dims or settings.location.dims
    tests = list(read_tree(args.data))
    if args.only:
        keep = set(args.only.split(","))
        tests = [t for t in tests if t.name.split("/")[0] in keep]
    result: dict[str, Any] = {"data": str(args.data), "dims": dims, "tests": len(tests)}
    t0 = time.perf_counter()
    per: Settings | dict[str, Settings] = settings
    if not args.no_calibrate:
        # calibrated on all positions' full-network data, each held out from its own value
        per, info = calibrated_settings(list(read_tree(args.data)), settings, dims)
        result["calibration"] = info
    for n in (int(v) for v in args.ns.split(",")):
        result[f"N={n}"] = run_sparse(tests, per, dims, n=n, trials=args.trials, seed=args.seed)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
