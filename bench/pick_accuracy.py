"""Picking accuracy on the Pittsburgh live-fire audio, and picker throughput.

Evaluation code: it reads the published pulses (allpulses.json) and the vendor's shot grouping
(nlos-tuples.json) only to score the picks made from the WAVs by the product path
(:func:`shotwatch.io.audio_pulses.pulses_from_audio_dir`).

Each published pulse of a sensor whose WAV we have is matched to the nearest pick of that
sensor within ``--match-ms``. Published times have 1 ms resolution, so |dt| cannot fall much
below a quarter of a millisecond even for a perfect picker; the constant offset between our
onset definition and the vendor's (median dt over all data) is reported, and |dt| after
removing that one global constant too. Nothing is tuned per file.

    PYTHONPATH=src python3 bench/pick_accuracy.py --data /work/shared/data/pittsburgh-2018
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from shotwatch.core.model import parse_utc
from shotwatch.io.audio_pulses import pulses_from_audio_dir
from shotwatch.signal.picker import PickerConfig, StreamingPicker


def _stats(dt_ms: list[float], bias_ms: float) -> dict[str, Any]:
    a = np.asarray(dt_ms)
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "median_abs_dt_ms": round(float(np.median(np.abs(a))), 3),
        "p90_abs_dt_ms": round(float(np.percentile(np.abs(a), 90)), 3),
        "median_dt_ms": round(float(np.median(a)), 3),
        "median_abs_dt_minus_bias_ms": round(float(np.median(np.abs(a - bias_ms))), 3),
        "p90_abs_dt_minus_bias_ms": round(float(np.percentile(np.abs(a - bias_ms), 90)), 3),
    }


def evaluate(data: Path, step: int, match_ms: float, cfg_kw: dict[str, Any]) -> dict[str, Any]:
    tests = sorted(p for p in data.glob("FP*/test_*") if p.is_dir())[::step]
    per_fp: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "dt": [],
            "first_dt": [],
            "first_pub": 0,
            "pub": 0,
            "found": 0,
            "shot_pub": 0,
            "shot_found": 0,
            "extra": 0,
            "picks": 0,
            "strong_pub": 0,
            "strong_found": 0,
        }
    )
    errors: list[str] = []
    for test in tests:
        fp = test.parent.name
        acc = per_fp[fp]
        cfg = PickerConfig(sample_rate_hz=12000, **cfg_kw) if cfg_kw else None
        res = pulses_from_audio_dir(test, config=cfg)
        errors += [str(e) for e in res.errors]
        serials = {s.serial for s in res.sensors}
        picks: dict[str, np.ndarray] = {
            s: np.array(sorted(p.t_s for p in res.pulses if p.sensor == s)) for s in serials
        }
        published = json.loads(next(test.glob("*.allpulses.json")).read_text())
        shot_ids: set[str] = set()
        first_arrivals: list[tuple[str, float]] = []  # earliest pulse per (shot, sensor)
        by_uuid = {p["pulse_uuid"]: p for p in published}
        tuples = list(test.glob("*.nlos-tuples.json"))
        if tuples:
            for shot in json.loads(tuples[0].read_text()):
                shot_ids.update(shot.get("pulse_uuids", []))
                earliest: dict[str, float] = {}
                for u in shot.get("pulse_uuids", []):
                    q = by_uuid.get(u)
                    if q is None or q["serial_number"] not in serials:
                        continue
                    t_q = parse_utc(q["arrival_time_utc"])
                    earliest[q["serial_number"]] = min(t_q, earliest.get(q["serial_number"], t_q))
                first_arrivals += sorted(earliest.items())
        for serial, t_first in first_arrivals:
            pk = picks[serial]
            acc["first_pub"] += 1
            if pk.size:
                dt = float(pk[np.argmin(np.abs(pk - t_first))] - t_first)
                if abs(dt) * 1000.0 <= match_ms:
                    acc["first_dt"].append(dt * 1000.0)
        seen: set[tuple[str, float]] = set()
        matched: dict[str, set[int]] = defaultdict(set)
        for p in published:
            serial = p["serial_number"]
            if serial not in serials:
                continue
            t = parse_utc(p["arrival_time_utc"])
            if (serial, t) in seen:
                continue
            seen.add((serial, t))
            is_shot = p["pulse_uuid"] in shot_ids
            strong = float(p.get("signal_to_noise_dB", 0.0)) >= 10.0
            acc["pub"] += 1
            acc["shot_pub"] += is_shot
            acc["strong_pub"] += strong
            pk = picks[serial]
            if pk.size == 0:
                continue
            i = int(np.argmin(np.abs(pk - t)))
            dt = float(pk[i] - t)
            if abs(dt) * 1000.0 <= match_ms:
                acc["found"] += 1
                acc["shot_found"] += is_shot
                acc["strong_found"] += strong
                acc["dt"].append(dt * 1000.0)
                matched[serial].add(i)
        for s, pk in picks.items():
            acc["picks"] += int(pk.size)
            acc["extra"] += int(pk.size) - len(matched[s])
    all_dt = [d for a in per_fp.values() for d in a["dt"]]
    bias = float(np.median(all_dt)) if all_dt else 0.0

    def summary(a: dict[str, Any]) -> dict[str, Any]:
        return {
            **_stats(a["dt"], bias),
            "shot_first_arrivals": {
                **_stats(a["first_dt"], bias),
                "recall": round(len(a["first_dt"]) / max(a["first_pub"], 1), 4),
            },
            "published": a["pub"],
            "recall": round(a["found"] / max(a["pub"], 1), 4),
            "recall_snr_ge_10db": round(a["strong_found"] / max(a["strong_pub"], 1), 4),
            "recall_shot_pulses": round(a["shot_found"] / max(a["shot_pub"], 1), 4),
            "picks": a["picks"],
            "picks_without_published_pulse": a["extra"],
        }

    total: dict[str, Any] = defaultdict(int)
    total["dt"] = all_dt
    total["first_dt"] = [d for a in per_fp.values() for d in a["first_dt"]]
    for a in per_fp.values():
        for k in (
            "pub",
            "found",
            "shot_pub",
            "shot_found",
            "extra",
            "picks",
            "strong_pub",
            "strong_found",
            "first_pub",
        ):
            total[k] += a[k]
    return {
        "tests": len(tests),
        "match_window_ms": match_ms,
        "global_bias_ms": round(bias, 3),
        "overall": summary(total),
        "per_firing_position": {fp: summary(a) for fp, a in sorted(per_fp.items())},
        "input_errors": errors,
    }


def throughput(rate_hz: int, seconds: float, chunk_s: float, seed: int) -> dict[str, Any]:
    """Picker samples/s on synthetic noise with an impulse every 0.5 s (one core)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate_hz)
    x = 0.01 * rng.standard_normal(n).astype(np.float32)
    period = rate_hz // 2
    decay = np.exp(-np.arange(int(0.005 * rate_hz)) / (0.001 * rate_hz)).astype(np.float32)
    for start in range(period // 2, n - decay.size, period):
        x[start : start + decay.size] += 0.5 * decay
    picker = StreamingPicker(PickerConfig(sample_rate_hz=rate_hz))
    chunk = max(1, int(chunk_s * rate_hz))
    t0 = time.process_time()
    count = 0
    for i in range(0, n, chunk):
        count += len(picker.feed(x[i : i + chunk]))
    count += len(picker.flush())
    cpu_s = time.process_time() - t0
    return {
        "sample_rate_hz": rate_hz,
        "audio_s": seconds,
        "chunk_s": chunk_s,
        "cpu_s": round(cpu_s, 3),
        "samples_per_s": round(n / cpu_s),
        "times_real_time": round(seconds / cpu_s, 1),
        "picks": count,
        "impulses": len(range(period // 2, n - decay.size, period)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="pittsburgh-2018 folder")
    ap.add_argument("--step", type=int, default=1, help="use every STEP-th test (default all)")
    ap.add_argument("--match-ms", type=float, default=20.0)
    ap.add_argument("--throughput-s", type=float, default=600.0, help="audio seconds to time")
    ap.add_argument("--chunk-s", type=float, default=0.1)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a PickerConfig field (exploration only)",
    )
    args = ap.parse_args()
    cfg_kw: dict[str, Any] = {}
    for item in args.set:
        k, v = item.split("=", 1)
        cfg_kw[k] = int(v) if v.isdigit() else float(v)
    out: dict[str, Any] = {"accuracy": evaluate(args.data, args.step, args.match_ms, cfg_kw)}
    if args.throughput_s > 0:
        out["throughput"] = [
            throughput(rate, args.throughput_s, args.chunk_s, seed=1) for rate in (12000, 48000)
        ]
    out["picker_overrides"] = cfg_kw
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
