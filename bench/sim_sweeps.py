"""Simulator sweeps (issue #2 target 4): association and location against pick error, false
pulses, non-line-of-sight share and a wrong speed of sound; incident metrics over seeded
scenario batches. Prints one JSON object.

    PYTHONPATH=src python3 -m bench.sim_sweeps --seeds 3 --cases 60

``--mode oracle`` uses the true pulse grouping (perfect association) to measure location and
the incident builder alone; ``--mode product`` (default when available) runs the Associator.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

from bench.simeval import (
    associator_available,
    base_scenario,
    incident_case,
    oracle_shots,
    run_associator,
    run_case,
    score_association,
    score_incident,
)
from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.model import ShotLocation
from shotwatch.core.settings import Settings
from shotwatch.sim import SimResult, parse_scenario, simulate_pulses

SWEEPS: dict[str, list[float]] = {
    "pick_error_s": [0.0005, 0.001, 0.002, 0.005],
    "false_pulse_ratio": [0.0, 0.25, 0.5, 1.0],
    "nlos_share": [0.0, 0.1, 0.2, 0.3],
    "temperature_error_c": [0.0, 3.0, 6.0, 10.0],
}
BASE = {"pick_error_s": 0.0005, "false_pulse_ratio": 0.0, "nlos_share": 0.1}


def sweep_scenario(
    seed: int, *, pick_error_s: float, false_pulse_ratio: float, nlos_share: float
) -> dict[str, Any]:
    """A busy city minute: 30 shots (single rounds and short strings) across a 2 km grid."""
    rng = np.random.default_rng([seed, 17])
    sources = []
    for k in range(12):
        sources.append(
            {
                "kind": "gunfire",
                "name": f"g{k}",
                "position_m": [float(rng.uniform(200, 1800)), float(rng.uniform(200, 1800)), 1.5],
                "start_s": float(rng.uniform(2.0, 55.0)),
                "calibre": str(rng.choice(["9mm", "40", "45", "22", "556"])),
                "rounds": int(rng.integers(1, 5)),
                "cadence_rps": float(rng.uniform(0.8, 3.0)),
            }
        )
    return base_scenario(
        f"sweep-{seed}",
        sources,
        duration_s=60.0,
        environment={"nlos_share": nlos_share},
        detection={"pick_error_s": pick_error_s, "false_pulse_ratio": false_pulse_ratio},
    )


def shots_for(mode: str, res: SimResult, c_mps: float, settings: Settings) -> list[ShotLocation]:
    if mode == "oracle":
        return oracle_shots(res, c_mps, settings)
    return run_associator(res.pulses, c_mps, settings, res.sensors).shots


def run_sweeps(mode: str, seeds: int, settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param, values in SWEEPS.items():
        rows = []
        for v in values:
            kw = dict(BASE)
            t_err = 0.0
            if param == "temperature_error_c":
                t_err = v
            else:
                kw[param] = v
            agg: dict[str, list[float]] = {}
            errors: list[float] = []
            for seed in range(seeds):
                sc = parse_scenario(sweep_scenario(seed, **kw), "sweep")
                res = simulate_pulses(sc, seed)
                c_assumed = speed_of_sound_mps(sc.environment.temperature_c + t_err)
                shots = shots_for(mode, res, c_assumed, settings)
                score = score_association(res, shots)
                errors += score.errors_m
                for k, val in score.as_dict().items():
                    agg.setdefault(k, []).append(float(val))
            e = np.array(errors) if errors else np.array([math.nan])
            rows.append(
                {
                    param: v,
                    "precision": round(float(np.mean(agg["precision"])), 4),
                    "recall": round(float(np.mean(agg["recall"])), 4),
                    "f1": round(float(np.mean(agg["f1"])), 4),
                    "median_error_m": round(float(np.median(e)), 2),
                    "p90_error_m": round(float(np.percentile(e, 90)), 2),
                    "events": int(sum(agg["locatable_events"])),
                    "shots": int(sum(agg["shots"])),
                }
            )
        out[param] = rows
    return out


TARGETS = {"rounds": 0.98, "two_shooters": 0.95, "automatic": 0.95, "moving": 0.95}


def run_incidents(mode: str, cases: int, settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("rounds", "two_shooters", "automatic", "moving"):
        scores = []
        for seed in range(cases):
            res, incidents = run_case(
                incident_case(kind, seed),
                seed,
                settings,
                lambda r, c: shots_for(mode, r, c, settings),
            )
            scores.append(score_incident(kind, res, incidents))
        ok = float(np.mean([s["ok"] for s in scores]))
        row: dict[str, Any] = {"cases": cases, "share_ok": round(ok, 4), "target": TARGETS[kind]}
        if kind == "moving":
            errs = [s["heading_error_deg"] for s in scores if s["heading_error_deg"] is not None]
            row["movement_reported"] = len(errs)
            row["median_heading_error_deg"] = round(float(np.median(errs)), 2) if errs else None
        if kind in ("rounds", "two_shooters"):
            row["failures"] = [
                {k: v for k, v in s.items() if k != "ok"} | {"seed": i}
                for i, s in enumerate(scores)
                if not s["ok"]
            ][:10]
        out[kind] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3, help="seeds per sweep point")
    ap.add_argument("--cases", type=int, default=60, help="seeded scenarios per incident kind")
    ap.add_argument("--mode", choices=["product", "oracle", "both"], default="both")
    ap.add_argument("--skip-sweeps", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    modes = ["oracle", "product"] if args.mode == "both" else [args.mode]
    result: dict[str, Any] = {"seeds": args.seeds, "cases": args.cases}
    for mode in modes:
        if mode == "product" and not associator_available():
            result[mode] = {"error": "shotwatch.association.Associator not available"}
            continue
        t0 = time.perf_counter()
        block: dict[str, Any] = {}
        if not args.skip_sweeps:
            block["sweeps"] = run_sweeps(mode, args.seeds, settings)
        block["incidents"] = run_incidents(mode, args.cases, settings)
        block["seconds"] = round(time.perf_counter() - t0, 1)
        result[mode] = block
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
