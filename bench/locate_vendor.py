"""Benchmark: the locator alone on the Pittsburgh live-fire data, given the vendor's grouping
of pulses into shots (issue #2; evaluation code: survey.json and nlos-tuples.json are read
only to choose the pulses of a shot and to score).

* ``full``: every shot with all the sensors of its vendor tuple: median, p90 and share within
  15 m per firing position and overall; how often the survey point lies inside the reported
  90 % circle (``inside_u90``), and inside it widened by the survey's own ~2.5 m error
  (``inside_u90_survey``: radius sqrt(u90^2 + 3.8^2), 3.8 m being the 90 % radius of a
  circular 2.5 m RMS error); cost per ``locate()`` call, with and without a start point.
* ``sparse``: each test cut to N random sensors among those that heard it (as
  bench/locate_sparse.py "reference": seeded per seed, test, N and trial; the test's other
  sensors are passed as silent). Within 15 m is over the rounds fired.

    PYTHONPATH=src:. python3 bench/locate_vendor.py --data ../shared/data/pittsburgh-2018
    PYTHONPATH=src:. python3 bench/locate_vendor.py --data ... --sparse --seeds 2018,1,2
    PYTHONPATH=src:. python3 bench/locate_vendor.py --data ... --set height_mode=fixed
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

from bench.locate_pittsburgh import _c, _truth
from shotwatch.core.model import Pulse, ShotLocation
from shotwatch.core.settings import LocationSettings, Settings
from shotwatch.io.pittsburgh import TestData, read_tree
from shotwatch.location import locate

#: 90 % radius of a circular Gaussian with 2.5 m RMS radial error (the survey's accuracy).
SURVEY_R90_M = 2.5 / math.sqrt(2) * math.sqrt(2 * math.log(10))


def _err(s: ShotLocation, truth: np.ndarray) -> float:
    return math.hypot(s.x_m - truth[0], s.y_m - truth[1])


def _stats(errs: list[float], fired: int | None = None) -> dict[str, Any]:
    e = np.array(errs) if errs else np.array([np.nan])
    n = fired if fired is not None else len(errs)
    return {
        "shots": len(errs),
        "median_m": round(float(np.median(e)), 2),
        "p90_m": round(float(np.percentile(e, 90)), 2),
        "within_15m_pct": round(100.0 * float(np.sum(e <= 15.0)) / max(n, 1), 2),
    }


def run_full(tests: list[TestData], loc: LocationSettings) -> dict[str, Any]:
    by_fp: dict[str, list[float]] = {}
    inside = inside_s = 0
    costs: list[float] = []
    costs_start: list[float] = []
    heights: dict[str, list[int]] = {}
    for test in tests:
        c = _c(test, Settings())
        truth, _, groups = _truth(test)
        by_id = {p.pulse_id: p for p in test.pulses}
        fp = test.name.split("/")[0]
        for g in groups:
            ps = [by_id[u] for u in g if u in by_id]
            t1 = time.perf_counter()
            s = locate(ps, c_mps=c, settings=loc)
            costs.append(time.perf_counter() - t1)
            if s is None:
                by_fp.setdefault(fp, []).append(math.inf)
                continue
            t1 = time.perf_counter()
            locate(ps, c_mps=c, settings=loc, start_xy=(s.x_m + 20.0, s.y_m - 20.0))
            costs_start.append(time.perf_counter() - t1)
            e = _err(s, truth)
            by_fp.setdefault(fp, []).append(e)
            heights.setdefault(fp, []).append(s.dims)
            inside += e <= s.uncertainty_m
            inside_s += e <= math.hypot(s.uncertainty_m, SURVEY_R90_M)
    allv = [e for v in by_fp.values() for e in v]
    return {
        "overall": _stats(allv),
        "per_firing_position": {
            fp: {
                **_stats(v),
                "height_solved_pct": round(100 * float(np.mean(np.array(heights[fp]) == 3)), 1),
            }
            for fp, v in sorted(by_fp.items())
        },
        "inside_u90_pct": round(100.0 * inside / max(len(allv), 1), 1),
        "inside_u90_survey_pct": round(100.0 * inside_s / max(len(allv), 1), 1),
        "cost_ms_per_call": round(1000 * float(np.mean(costs)), 2),
        "cost_ms_per_call_with_start": round(1000 * float(np.mean(costs_start)), 2),
    }


def run_sparse(
    tests: list[TestData], loc: LocationSettings, *, n: int, trials: int, seed: int
) -> dict[str, Any]:
    fired = 0
    located: list[float] = []
    inside = inside_s = calls = 0
    amb = amb_right = 0
    by_fp: dict[str, list[float]] = {}
    for test in tests:
        c = _c(test, Settings())
        truth, rounds, groups = _truth(test)
        by_id = {p.pulse_id: p for p in test.pulses}
        heard = sorted({by_id[u].sensor for g in groups for u in g if u in by_id})
        fired += rounds * trials
        if len(heard) < n:
            continue
        silent = [s for name, s in test.sensors.items() if name not in set(heard)]
        fp = test.name.split("/")[0]
        for k in range(trials):
            rng = random.Random(f"{seed}:{test.name}:{n}:{k}")
            keep = set(rng.sample(heard, n))
            shots = []
            for g in groups:
                ps: list[Pulse] = [by_id[u] for u in g if u in by_id and by_id[u].sensor in keep]
                s = locate(ps, c_mps=c, settings=loc, silent_sensors=silent)
                if s is None:
                    continue
                shots.append(s)
                e = _err(s, truth)
                calls += 1
                inside += e <= s.uncertainty_m
                inside_s += e <= math.hypot(s.uncertainty_m, SURVEY_R90_M)
                if s.ambiguous and s.alternative_xy_m is not None:
                    amb += 1
                    alt = math.hypot(
                        s.alternative_xy_m[0] - truth[0], s.alternative_xy_m[1] - truth[1]
                    )
                    amb_right += e <= alt
            errs = sorted(_err(s, truth) for s in shots)
            good = [e for e in errs if e <= 25.0][:rounds]
            located += good
            by_fp.setdefault(fp, []).extend(good)
    return {
        **_stats(located, fired),
        "shots_fired": fired,
        "inside_u90_pct": round(100.0 * inside / max(calls, 1), 1),
        "inside_u90_survey_pct": round(100.0 * inside_s / max(calls, 1), 1),
        "ambiguous": amb,
        "ambiguous_chosen_nearer_truth": amb_right,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--sparse", action="store_true")
    ap.add_argument("--ns", default="3,4,5")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seeds", default="2018,1,2")
    ap.add_argument("--only", default=None, help="firing positions, e.g. FP1,FP3")
    ap.add_argument(
        "--set", action="append", default=[], help="location setting, e.g. dims=3 (repeatable)"
    )
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(json.dumps({"error": f"data folder not found: {args.data}"}))
        return 2
    upd: dict[str, Any] = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        upd[k] = json.loads(v) if v[:1] in "0123456789-[{tfn" else v
    loc = LocationSettings(**upd)
    tests = list(read_tree(args.data))
    if args.only:
        keep = set(args.only.split(","))
        tests = [t for t in tests if t.name.split("/")[0] in keep]
    result: dict[str, Any] = {"tests": len(tests), "settings": upd}
    t0 = time.perf_counter()
    if args.sparse:
        for n in (int(v) for v in args.ns.split(",")):
            runs = [
                run_sparse(tests, loc, n=n, trials=args.trials, seed=int(sd))
                for sd in args.seeds.split(",")
            ]
            result[f"N={n}"] = {
                "within_15m_pct_mean": round(
                    float(np.mean([r["within_15m_pct"] for r in runs])), 2
                ),
                "per_seed": dict(zip(args.seeds.split(","), runs, strict=True)),
            }
    else:
        result["full"] = run_full(tests, loc)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
