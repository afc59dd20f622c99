"""Benchmark: locating the Pittsburgh shots from the audio alone (issue #2 target 3).

Runs the product command ``shotwatch locate DATA --from-audio --json`` (our picker on the
WAVs + their JSON sidecars; allpulses.json is not read), then, as evaluation code only, reads
survey.json to score: per test, up to the number of rounds fired, the shots within 25 m of the
surveyed position count as located; the rest are spurious. Target: >= 95 % of shots located,
>= 90 % within 15 m.

    PYTHONPATH=src python3 bench/locate_from_audio.py --data /work/shared/data/pittsburgh-2018
    PYTHONPATH=src python3 bench/locate_from_audio.py --data ... --vendor-grouping --cv-late \
        --out bench/results/locate_from_audio.json

``--cv-late`` checks the one data-chosen constant of the few-sensor grouping (the late side
of its agreement window, ``shotwatch.signal.few_sensor.NLOS_LATE_S``) by leave-one-firing-
position-out cross-validation: for each firing position the value that locates most shots on
the other five is chosen, and the held-out position is scored with it.

``--vendor-grouping`` separates picking from association: each shot's pulses are grouped by
the vendor's nlos-tuples.json (perfect association) and located by the product's solver,
once with our picks (the pick nearest each sensor's earliest published shot pulse, within
5 ms) and once with the published pulses of the same sensors at the same positions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

SPURIOUS_M = 25.0


def vendor_grouping(data: Path) -> dict[str, Any]:
    """Locate every shot with perfect association, from our picks and from the published
    pulses of the same sensors (evaluation only: reads nlos-tuples.json and survey.json)."""
    from dataclasses import replace

    from shotwatch.core.acoustics import speed_of_sound_mps
    from shotwatch.core.model import Pulse
    from shotwatch.core.settings import Settings
    from shotwatch.io.audio_pulses import pulses_from_audio_dir
    from shotwatch.io.pittsburgh import read_test
    from shotwatch.location import locate

    settings = Settings()
    errs: dict[str, list[float]] = {"our_picks": [], "published_pulses": []}
    for test_dir in sorted(p for p in data.glob("FP*/test_*") if p.is_dir()):
        ours = pulses_from_audio_dir(test_dir)
        test = read_test(test_dir)
        temp = test.weather.temperature_c if test.weather else None
        c = speed_of_sound_mps(
            temp if temp is not None else settings.location.default_temperature_c
        )
        sensors = {s.serial: s for s in ours.sensors}
        survey = json.loads(next(test_dir.glob("*.survey.json")).read_text())["survey_location"]
        published = {p.pulse_id: p for p in test.pulses}
        for shot in json.loads(next(test_dir.glob("*.nlos-tuples.json")).read_text()):
            first: dict[str, Pulse] = {}
            for uid in shot["pulse_uuids"]:
                q = published.get(uid)
                if q is None or q.sensor not in sensors:
                    continue
                if q.sensor not in first or q.t_s < first[q.sensor].t_s:
                    first[q.sensor] = q
            mine: list[Pulse] = []
            pubs: list[Pulse] = []
            for serial, q in first.items():
                near = [p for p in ours.pulses if p.sensor == serial and abs(p.t_s - q.t_s) < 5e-3]
                if near:
                    mine.append(min(near, key=lambda p: abs(p.t_s - q.t_s)))
                s = sensors[serial]
                pubs.append(replace(q, x_m=s.x_m, y_m=s.y_m, z_m=s.z_m))
            for key, group in (("our_picks", mine), ("published_pulses", pubs)):
                loc = (
                    locate(group, c_mps=c, settings=settings.location) if len(group) >= 3 else None
                )
                e = math.hypot(loc.x_m - survey["x"], loc.y_m - survey["y"]) if loc else math.inf
                errs[key].append(e)
    out: dict[str, Any] = {}
    for key, e_list in errs.items():
        e = np.asarray(e_list)
        finite = e[np.isfinite(e)]
        out[key] = {
            "shots": int(e.size),
            "within_25m_share": round(float(np.mean(e <= 25.0)), 4),
            "within_15m_share": round(float(np.mean(e <= 15.0)), 4),
            "median_m": round(float(np.median(finite)), 2) if finite.size else None,
        }
    return out


CV_LATES_S = (0.008, 0.02, 0.035, 0.05)


def cv_late(data: Path) -> dict[str, Any]:
    """Leave-one-firing-position-out choice of the few-sensor late window (evaluation only)."""
    from shotwatch.core.acoustics import speed_of_sound_mps
    from shotwatch.core.settings import Settings
    from shotwatch.io.audio_pulses import pulses_from_audio_dir
    from shotwatch.io.pittsburgh import read_test
    from shotwatch.signal.few_sensor import FewSensorGrouper

    settings = Settings()
    # located[fp][late] = (located, fired)
    located: dict[str, dict[float, list[int]]] = defaultdict(
        lambda: {v: [0, 0] for v in CV_LATES_S}
    )
    for test_dir in sorted(p for p in data.glob("FP*/test_*") if p.is_dir()):
        ap = pulses_from_audio_dir(test_dir)
        temp = ap.temperature_c
        if temp is None:
            w = read_test(test_dir).weather
            temp = w.temperature_c if w else None
        c = speed_of_sound_mps(
            temp if temp is not None else settings.location.default_temperature_c
        )
        survey = json.loads(next(test_dir.glob("*.survey.json")).read_text())
        sx, sy = survey["survey_location"]["x"], survey["survey_location"]["y"]
        rounds = int(survey["num_rounds"])
        fp = test_dir.parent.name
        for late in CV_LATES_S:
            shots = FewSensorGrouper(ap.sensors, c, settings, late_s=late).run(ap.pulses)
            good = sum(1 for s in shots if math.hypot(s.x_m - sx, s.y_m - sy) <= SPURIOUS_M)
            located[fp][late][0] += min(good, rounds)
            located[fp][late][1] += rounds
    folds: dict[str, Any] = {}
    held_loc = held_fired = 0
    for fp in sorted(located):
        others = [f for f in located if f != fp]
        best = max(CV_LATES_S, key=lambda v: sum(located[f][v][0] for f in others))
        loc, fired = located[fp][best]
        held_loc += loc
        held_fired += fired
        folds[fp] = {"chosen_late_s": best, "held_out_located_share": round(loc / fired, 4)}
    return {
        "grid_late_s": list(CV_LATES_S),
        "located_share_by_late": {
            str(v): round(
                sum(located[f][v][0] for f in located) / sum(located[f][v][1] for f in located),
                4,
            )
            for v in CV_LATES_S
        },
        "folds": folds,
        "held_out_located_share": round(held_loc / max(held_fired, 1), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="pittsburgh-2018 folder")
    ap.add_argument("--dims", type=int, choices=(2, 3), default=None)
    ap.add_argument(
        "--vendor-grouping",
        action="store_true",
        help="also locate with the vendor's pulse grouping (picking vs association)",
    )
    ap.add_argument(
        "--cv-late",
        action="store_true",
        help="leave-one-firing-position-out check of the few-sensor late window",
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    cmd = [sys.executable, "-m", "shotwatch", "locate", str(args.data), "--from-audio", "--json"]
    if args.dims:
        cmd += ["--dims", str(args.dims)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    wall_s = time.perf_counter() - t0
    shots_by_test: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        shots_by_test[rec["test"]].append(rec)

    per_fp: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"fired": 0, "errors_m": [], "spurious": 0, "tests": 0}
    )
    for survey_path in sorted(args.data.glob("FP*/test_*/*.survey.json")):
        test = survey_path.parent.relative_to(args.data).as_posix()
        survey = json.loads(survey_path.read_text())
        sx, sy = survey["survey_location"]["x"], survey["survey_location"]["y"]
        rounds = int(survey["num_rounds"])
        errs = sorted(math.hypot(s["x_m"] - sx, s["y_m"] - sy) for s in shots_by_test[test])
        good = [e for e in errs if e <= SPURIOUS_M]
        acc = per_fp[test.split("/")[0]]
        acc["tests"] += 1
        acc["fired"] += rounds
        acc["errors_m"] += good[:rounds]
        acc["spurious"] += (len(errs) - len(good)) + max(0, len(good) - rounds)

    def summary(a: dict[str, Any]) -> dict[str, Any]:
        e = np.asarray(a["errors_m"]) if a["errors_m"] else np.asarray([math.nan])
        fired = max(a["fired"], 1)
        return {
            "tests": a["tests"],
            "shots_fired": a["fired"],
            "located": len(a["errors_m"]),
            "located_share": round(len(a["errors_m"]) / fired, 4),
            "within_15m_share": round(int(np.sum(e <= 15.0)) / fired, 4),
            "median_m": round(float(np.median(e)), 2),
            "p90_m": round(float(np.percentile(e, 90)), 2),
            "spurious": a["spurious"],
        }

    total: dict[str, Any] = {"fired": 0, "errors_m": [], "spurious": 0, "tests": 0}
    for a in per_fp.values():
        for k in total:
            total[k] += a[k]
    out = {
        "command": " ".join(cmd[1:]),
        "wall_s": round(wall_s, 1),
        "overall": summary(total),
        "per_firing_position": {fp: summary(a) for fp, a in sorted(per_fp.items())},
        "targets": {"located_share": 0.95, "within_15m_share": 0.90},
        "stderr_tail": proc.stderr.strip().splitlines()[-1:],
    }
    if args.vendor_grouping:
        out["vendor_grouping"] = vendor_grouping(args.data)
    if args.cv_late:
        out["cv_late"] = cv_late(args.data)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
