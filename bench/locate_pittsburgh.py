"""Benchmark: association + location on the Pittsburgh live-fire data (issue #2 targets 1, 2).

Evaluation code: ground truth (survey.json, nlos-tuples.json) is read only AFTER locating, to
score. Prints one JSON document.

    python3 bench/locate_pittsburgh.py --data /work/shared/data/pittsburgh-2018
    python3 bench/locate_pittsburgh.py --data ... --sparse --trials 5
    python3 bench/locate_pittsburgh.py --data ... --lofo
    python3 bench/locate_pittsburgh.py --data ... --solver-lofo
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

from shotwatch.association import associate_all
from shotwatch.association.calibration import pair_excess, propagation_error_from
from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.model import Pulse, Sensor, ShotLocation
from shotwatch.core.settings import Settings
from shotwatch.io.pittsburgh import TestData, read_tree
from shotwatch.location import locate

SPURIOUS_M = 25.0


def _truth(test: TestData) -> tuple[np.ndarray, int, list[list[str]]]:
    survey = json.loads(next(test.path.glob("*.survey.json")).read_text())
    loc = survey["survey_location"]
    tuples = json.loads(next(test.path.glob("*.nlos-tuples.json")).read_text())
    groups = [list(s["pulse_uuids"]) for s in sorted(tuples, key=lambda s: s["shot_index"])]
    return np.array([loc["x"], loc["y"], loc["z"]]), int(survey["num_rounds"]), groups


def own_shots(
    pulses: list[Pulse] | tuple[Pulse, ...],
    sensors: list[Sensor],
    settings: Settings,
    c: float,
    dims: int,
) -> list[ShotLocation]:
    """The product path: our association (ADR 0015)."""
    shots, _ = associate_all(pulses, settings=settings, c_mps=c, dims=dims, sensors=sensors)
    return shots


def calibrated_settings(
    tests: list[TestData], settings: Settings, dims: int
) -> tuple[dict[str, Settings], dict[str, Any]]:
    """Per firing position: ``settings`` with ``propagation_error`` measured from our own
    located shots at the OTHER positions (the network calibrating itself from its history;
    no truth is read). Returns the settings per position and what each value rests on."""
    tol = settings.association.pick_tolerance_s
    excess: dict[str, list[float]] = {}
    n_shots: dict[str, int] = {}
    for test in tests:
        c = _c(test, settings)
        fp = test.name.split("/")[0]
        for shot in own_shots(test.pulses, list(test.sensors.values()), settings, c, dims):
            e = pair_excess(shot, test.sensors, c_mps=c, pick_tolerance_s=tol)
            excess.setdefault(fp, []).extend(e)
            n_shots[fp] = n_shots.get(fp, 0) + bool(e)
    out: dict[str, Settings] = {}
    info: dict[str, Any] = {}
    for fp in sorted(excess):
        cal = propagation_error_from(
            (x for f, v in excess.items() if f != fp for x in v),
            shots=sum(n for f, n in n_shots.items() if f != fp),
        )
        value = cal.propagation_error if cal is not None else 0.0
        out[fp] = settings.model_copy(
            update={
                "association": settings.association.model_copy(update={"propagation_error": value})
            }
        )
        info[fp] = (
            {"propagation_error": value, "shots": cal.shots, "pairs": cal.pairs}
            if cal is not None
            else {"propagation_error": 0.0, "shots": 0, "pairs": 0}
        )
    return out, info


def _c(test: TestData, settings: Settings) -> float:
    temp = test.weather.temperature_c if test.weather else settings.location.default_temperature_c
    return speed_of_sound_mps(temp)


def score_test(shots: list[ShotLocation], truth_xy: np.ndarray, rounds: int) -> dict[str, Any]:
    """Per-test scoring: the best `rounds` shots (closest to truth) count as located; any
    shot > 25 m off or beyond the rounds fired is spurious."""
    errs = sorted(math.hypot(s.x_m - truth_xy[0], s.y_m - truth_xy[1]) for s in shots)
    good = [e for e in errs if e <= SPURIOUS_M]
    located = good[:rounds]
    spurious = (len(errs) - len(good)) + max(0, len(good) - rounds)
    return {"located": located, "spurious": spurious}


def summarise(errors: list[float], fired: int, spurious: int) -> dict[str, Any]:
    e = np.array(errors) if errors else np.array([np.nan])
    return {
        "shots_fired": fired,
        "shots_located": len(errors),
        "located_pct": round(100.0 * len(errors) / max(fired, 1), 2),
        "median_m": round(float(np.median(e)), 2),
        "p90_m": round(float(np.percentile(e, 90)), 2),
        "within_15m_pct_of_fired": round(100.0 * float(np.sum(e <= 15.0)) / max(fired, 1), 2),
        "spurious_shots": spurious,
        "spurious_pct": round(100.0 * spurious / max(fired, 1), 2),
    }


def run_full(
    tests: list[TestData], settings: Settings | dict[str, Settings], dims: int
) -> dict[str, Any]:
    """All pulses, own association; ``settings`` for all tests or per firing position."""
    per_fp: dict[str, dict[str, Any]] = {}
    all_err: list[float] = []
    fired = spurious = 0
    ref_err: list[float] = []
    t_assoc = 0.0
    n_pulses = 0
    for test in tests:
        fp = test.name.split("/")[0]
        fp_settings = settings if isinstance(settings, Settings) else settings[fp]
        c = _c(test, fp_settings)
        t1 = time.perf_counter()
        shots = own_shots(test.pulses, list(test.sensors.values()), fp_settings, c, dims)
        t_assoc += time.perf_counter() - t1
        n_pulses += len(test.pulses)
        truth, rounds, groups = _truth(test)
        sc = score_test(shots, truth, rounds)
        d = per_fp.setdefault(fp, {"err": [], "fired": 0, "spurious": 0, "ref": []})
        d["err"] += sc["located"]
        d["fired"] += rounds
        d["spurious"] += sc["spurious"]
        all_err += sc["located"]
        fired += rounds
        spurious += sc["spurious"]
        # Reference: our locator given the vendor's grouping (perfect association).
        by_id = {p.pulse_id: p for p in test.pulses}
        for g in groups:
            ps = [by_id[u] for u in g if u in by_id]
            s = locate(ps, c_mps=c, dims=dims, settings=fp_settings.location)
            if s is not None:
                e = math.hypot(s.x_m - truth[0], s.y_m - truth[1])
                ref_err.append(e)
                d["ref"].append(e)
    out = summarise(all_err, fired, spurious)
    out["errors"] = all_err
    out["pulses"] = n_pulses
    out["association_location_pulses_per_s"] = round(n_pulses / max(t_assoc, 1e-9), 1)
    out["reference_vendor_grouping"] = {
        "shots": len(ref_err),
        "median_m": round(float(np.median(ref_err)), 2),
        "p90_m": round(float(np.percentile(ref_err, 90)), 2),
        "within_15m_pct": round(100.0 * float(np.mean(np.array(ref_err) <= 15.0)), 2),
    }
    out["per_firing_position"] = {
        fp: {
            **{k: v for k, v in summarise(d["err"], d["fired"], d["spurious"]).items()},
            "reference_median_m": round(float(np.median(d["ref"])), 2) if d["ref"] else None,
        }
        for fp, d in sorted(per_fp.items())
    }
    return out


def run_sparse(
    tests: list[TestData],
    settings: Settings,
    dims: int,
    *,
    ns: list[int],
    trials: int,
    seed: int,
) -> dict[str, Any]:
    """Each test cut to N random sensors that heard it (a sensor 'heard' the test when it is
    in any of the vendor's shot tuples); all pulses of those sensors are kept (echoes
    included) and associated by us."""
    rng = random.Random(seed)
    out: dict[str, Any] = {}
    for n in ns:
        errs_ours: list[float] = []
        errs_ref: list[float] = []
        fired = 0
        for test in tests:
            c = _c(test, settings)
            truth, rounds, groups = _truth(test)
            by_id = {p.pulse_id: p for p in test.pulses}
            heard = sorted({by_id[u].sensor for g in groups for u in g if u in by_id})
            if len(heard) < n:
                fired += rounds * trials
                continue
            for _ in range(trials):
                keep = set(rng.sample(heard, n))
                cut = [p for p in test.pulses if p.sensor in keep]
                sensors = [s for s in test.sensors.values() if s.serial in keep]
                shots = own_shots(cut, sensors, settings, c, dims)
                sc = score_test(shots, truth, rounds)
                errs_ours += sc["located"]
                fired += rounds
                for g in groups:
                    ps: list[Pulse] = [
                        by_id[u] for u in g if u in by_id and by_id[u].sensor in keep
                    ]
                    s = locate(ps, c_mps=c, dims=dims, settings=settings.location)
                    if s is not None:
                        errs_ref.append(math.hypot(s.x_m - truth[0], s.y_m - truth[1]))
        out[f"N={n}"] = {
            "trials_per_test": trials,
            "shots_fired": fired,
            "within_15m_pct": round(100.0 * sum(e <= 15 for e in errs_ours) / max(fired, 1), 2),
            "median_m": round(float(np.median(errs_ours)), 2) if errs_ours else None,
            "reference_vendor_grouping_within_15m_pct": round(
                100.0 * sum(e <= 15 for e in errs_ref) / max(fired, 1), 2
            ),
        }
    return out


#: The association constants chosen on this data (ADR 0015) and the values tried for each.
LOFO_GRID: dict[str, tuple[float, ...]] = {
    "pick_tolerance_s": (0.006, 0.008, 0.010),
    "nucleation_false_alarm": (0.03, 0.1, 0.3),
    "echo_support_ratio": (0.5, 0.6, 0.8),
}


def run_lofo(tests: list[TestData], dims: int) -> dict[str, Any]:
    """Leave one firing position out: for each position, the association constants that do
    best on the other five (rounds located minus twice the spurious shots) are chosen from
    ``LOFO_GRID`` and measured on the held-out one, whose data never touched its choice."""
    import itertools

    fps = sorted({t.name.split("/")[0] for t in tests})
    names = list(LOFO_GRID)
    combos = list(itertools.product(*(LOFO_GRID[n] for n in names)))
    # every combination on every position once
    table: dict[tuple[float, ...], dict[str, dict[str, Any]]] = {}
    for combo in combos:
        settings = Settings(association=dict(zip(names, combo, strict=True)))
        table[combo] = {
            fp: run_full([t for t in tests if t.name.split("/")[0] == fp], settings, dims)
            for fp in fps
        }

    def score(combo: tuple[float, ...], on: list[str]) -> int:
        return sum(
            table[combo][fp]["shots_located"] - 2 * table[combo][fp]["spurious_shots"] for fp in on
        )

    out: dict[str, Any] = {"grid": {n: list(v) for n, v in LOFO_GRID.items()}}
    errs: list[float] = []
    fired = spurious = 0
    for fp in fps:
        train = [f for f in fps if f != fp]
        best = max(combos, key=lambda c: (score(c, train), c == DEFAULT_COMBO))
        res = table[best][fp]
        out[fp] = {
            "chosen": dict(zip(names, best, strict=True)),
            **{k: res[k] for k in ("shots_located", "median_m", "p90_m", "spurious_shots")},
        }
        errs += res["errors"]
        fired += res["shots_fired"]
        spurious += res["spurious_shots"]
    out["all_held_out"] = {k: v for k, v in summarise(errs, fired, spurious).items()}
    default = DEFAULT_COMBO
    out["defaults_all_positions"] = {
        "values": dict(zip(names, default, strict=True)),
        "shots_located": sum(table[default][fp]["shots_located"] for fp in fps),
        "spurious_shots": sum(table[default][fp]["spurious_shots"] for fp in fps),
    }
    return out


_DEFAULTS = Settings().association
DEFAULT_COMBO = tuple(float(getattr(_DEFAULTS, n)) for n in LOFO_GRID)


_SCALES = ((0.01, 0.03), (0.05, 0.1), (0.2, 0.4))
SOLVER_CANDIDATES = [(dims, late, early) for dims in (2, 3) for late, early in _SCALES]


def run_solver_lofo(tests: list[TestData]) -> dict[str, Any]:
    """Choose the solver's dims and loss scales leave-one-firing-position-out on the vendor's
    grouping (a pure location task): for each held-out position the candidate with the
    lowest median + p90 on the other five is measured on it."""
    base = Settings()
    errs: dict[tuple[int, float, float], dict[str, list[float]]] = {}
    for cand in SOLVER_CANDIDATES:
        dims, late, early = cand
        loc = base.location.model_copy(update={"late_scale_s": late, "early_scale_s": early})
        by_fp: dict[str, list[float]] = {}
        for test in tests:
            c = _c(test, base)
            truth, _, groups = _truth(test)
            by_id = {p.pulse_id: p for p in test.pulses}
            for g in groups:
                s = locate([by_id[u] for u in g if u in by_id], c_mps=c, dims=dims, settings=loc)
                if s is not None:
                    e = math.hypot(s.x_m - truth[0], s.y_m - truth[1])
                    by_fp.setdefault(test.name.split("/")[0], []).append(e)
        errs[cand] = by_fp
    fps = sorted(next(iter(errs.values())))
    out: dict[str, Any] = {"candidates": {}}
    for cand, by_fp in errs.items():
        v = np.concatenate([by_fp[f] for f in fps])
        key = f"dims={cand[0]} late={cand[1]} early={cand[2]}"
        out["candidates"][key] = {
            "median_m": round(float(np.median(v)), 2),
            "p90_m": round(float(np.percentile(v, 90)), 2),
        }
    held: list[float] = []
    for fp in fps:

        def objective(cand: tuple[int, float, float], fp: str = fp) -> float:
            v = np.concatenate([errs[cand][f] for f in fps if f != fp])
            return float(np.median(v) + np.percentile(v, 90))

        best = min(SOLVER_CANDIDATES, key=objective)
        held += errs[best][fp]
        out[fp] = {
            "chosen": f"dims={best[0]} late={best[1]} early={best[2]}",
            "held_out_median_m": round(float(np.median(errs[best][fp])), 2),
        }
    out["all_held_out"] = {
        "median_m": round(float(np.median(held)), 2),
        "p90_m": round(float(np.percentile(held, 90)), 2),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--dims", type=int, default=2, choices=(2, 3))
    ap.add_argument("--sparse", action="store_true", help="sparse-coverage mode (N=3/4/5)")
    ap.add_argument("--trials", type=int, default=3, help="random cuts per test (sparse)")
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--only", default=None, help="firing positions, e.g. FP1,FP3")
    ap.add_argument(
        "--lofo", action="store_true", help="leave-one-firing-position-out parameter check"
    )
    ap.add_argument(
        "--solver-lofo",
        action="store_true",
        help="choose solver dims/loss scales leave-one-FP-out on the vendor grouping",
    )
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(json.dumps({"error": f"data folder not found: {args.data}"}))
        return 2
    settings = Settings()
    tests = list(read_tree(args.data))
    if args.only:
        keep = set(args.only.split(","))
        tests = [t for t in tests if t.name.split("/")[0] in keep]
    result: dict[str, Any] = {
        "data": str(args.data),
        "dims": args.dims,
        "tests": len(tests),
    }
    t0 = time.perf_counter()
    if args.sparse:
        result["sparse"] = run_sparse(
            tests, settings, args.dims, ns=[3, 4, 5], trials=args.trials, seed=args.seed
        )
    elif args.solver_lofo:
        result["solver_leave_one_firing_position_out"] = run_solver_lofo(tests)
    elif args.lofo:
        result["leave_one_firing_position_out"] = run_lofo(tests, args.dims)
    else:
        full = run_full(tests, settings, args.dims)
        full.pop("errors")
        result["all_pulses"] = full
        # the deployment's way: propagation_error measured from its own located shots
        # (here at the other firing positions; no truth), ADR 0018
        per, info = calibrated_settings(list(read_tree(args.data)), settings, args.dims)
        cal = run_full(tests, per, args.dims)
        cal.pop("errors")
        result["all_pulses_calibrated"] = {"calibration": info, **cal}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
