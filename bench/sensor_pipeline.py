"""Benchmark of one sensor's whole pipeline: pick + score + encrypted buffer write + signing.

Two measurements, printed as one JSON object:

* ``speed``: for each sample rate, ``--seconds`` of synthetic street audio (pink-ish noise with
  an impulse every ~7 s) go through :class:`SensorPipeline` with a real on-disk AES-GCM buffer,
  Ed25519-signed reports and heartbeats into a real SQLite spool; the process is pinned to one
  CPU. ``realtime_factor`` = audio seconds / wall seconds (target >= 200).
* ``week``: a simulated week of uptime (the clock runs 7 days): every ``--period-s`` seconds a
  ``--burst-s`` stretch of audio is processed, so every time-driven part runs a week's worth
  (buffer eviction over the 30-h window, stream restarts, heartbeats, sequence numbers, the
  spool) while the audio work stays affordable. RSS is sampled each simulated day; memory is
  flat when day 7 is no larger than day 1 beyond noise.

Reproduce: ``PYTHONPATH=src python3 bench/sensor_pipeline.py``
(``--seconds 300 --period-s 300 --burst-s 4`` are the defaults; each burst holds one impulse).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shotwatch.core.settings import Settings
from shotwatch.sensor.agent import picker_config_factory
from shotwatch.sensor.buffer import AudioBuffer
from shotwatch.sensor.keys import KeyEncryptionKey
from shotwatch.sensor.pipeline import SensorPipeline
from shotwatch.sensor.score import SCORERS
from shotwatch.sensor.signer import SensorSigner
from shotwatch.sensor.sources import AudioBlock
from shotwatch.sensor.spool import Spool
from shotwatch.signal.picker import StreamingPicker

T0 = 1_800_000_000.0


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def street_audio(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Noise at about -45 dBFS with a decaying impulse every ~7 s (int16)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    x = np.cumsum(rng.normal(0, 1, n)) * 0.002
    x -= np.convolve(x, np.ones(256) / 256, mode="same")  # remove the random walk's drift
    x += rng.normal(0, 0.004, n)
    k = np.arange(round(0.05 * sr))
    shape = np.exp(-k / (0.004 * sr)) * np.cos(2 * np.pi * 800 * k / sr)
    for t in np.arange(1.5, seconds - 1.5, 7.1):
        i = round(t * sr)
        x[i : i + k.size] += 0.5 * shape
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def make_pipeline(
    root: Path, sr: int, segment_s: float, scorer: str = "classifier"
) -> tuple[SensorPipeline, AudioBuffer, Spool]:
    buf = AudioBuffer.open(
        root / "buffer",
        KeyEncryptionKey(os.urandom(32)),
        sample_rate_hz=sr,
        retention_s=30 * 3600.0,
        segment_s=segment_s,
    )
    spool = Spool(root / "spool.sqlite")
    pipe = SensorPipeline(
        signer=SensorSigner("BENCH-1", Ed25519PrivateKey.generate(), root / "sequence"),
        emit=lambda seq, kind, data: spool.put(seq, kind, data, 0.0),
        buffer=buf,
        picker_config=picker_config_factory(Settings()),
        position={"x_m": 0.0, "y_m": 0.0, "z_m": 5.0},
        heartbeat_interval_s=60.0,
        scorer=SCORERS[scorer],
    )
    return pipe, buf, spool


def bench_speed(sr: int, seconds: float, block_s: float, scorer: str) -> dict[str, object]:
    audio = street_audio(seconds, sr, seed=sr)
    n = round(block_s * sr)
    SCORERS[scorer](audio[: 2 * sr], sr, sr)  # load the model outside the timed run
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
        pipe, buf, spool = make_pipeline(Path(tmp), sr, segment_s=60.0, scorer=scorer)
        gc.collect()
        t_wall = time.perf_counter()
        t_cpu = time.process_time()
        for i in range(0, audio.size, n):
            pipe.process(AudioBlock(audio[i : i + n], T0 + i / sr, sr, 0.0005))
        pipe.close(T0 + seconds)
        wall = time.perf_counter() - t_wall
        cpu = time.process_time() - t_cpu
        out = {
            "sample_rate_hz": sr,
            "scorer": scorer,
            "audio_s": seconds,
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            "realtime_factor": round(seconds / wall, 1),
            "realtime_factor_cpu": round(seconds / cpu, 1),
            "picks": pipe.stats.picks,
            "reports": pipe.stats.reports,
            "segments": len(buf.segments),
            "buffer_disk_bytes": buf.disk_bytes,
        }
        buf.close()
        spool.close()
    # The picker alone on the same audio (same 0.25-s chunks the pipeline hands it): the
    # share of the budget that is the picker's, measured in the same run.
    picker = StreamingPicker(picker_config_factory(Settings())(sr), start_s=T0)
    chunk = round(0.25 * sr)
    c0 = time.process_time()
    for i in range(0, audio.size, chunk):
        picker.feed(audio[i : i + chunk] * (1.0 / 32768.0))
    picker.flush()
    picker_cpu = time.process_time() - c0
    out["picker_only_cpu_s"] = round(picker_cpu, 3)
    out["picker_share_of_cpu"] = round(picker_cpu / cpu, 2)
    return out


def bench_week(sr: int, period_s: float, burst_s: float, block_s: float) -> dict[str, object]:
    days = 7
    audio = street_audio(burst_s, sr, seed=1)
    n = round(block_s * sr)
    rss_by_day: list[int] = []
    with tempfile.TemporaryDirectory(prefix="sw-week-") as tmp:
        pipe, buf, spool = make_pipeline(Path(tmp), sr, segment_s=60.0)
        t = T0
        end = T0 + days * 86400.0
        next_day = T0 + 86400.0
        t_wall = time.perf_counter()
        max_span = 0.0
        while t < end:
            for i in range(0, audio.size, n):
                pipe.process(AudioBlock(audio[i : i + n], t + i / sr, sr, 0.0005))
            pipe.heartbeat(t + burst_s)
            max_span = max(max_span, buf.span_s)
            # The server is reachable: acknowledged messages leave the spool.
            spool.remove([seq for seq, _, _ in spool.head(10_000)])
            t += period_s
            if t >= next_day:
                gc.collect()
                rss_by_day.append(rss_bytes())
                next_day += 86400.0
                print(
                    f"day {len(rss_by_day)}: rss {rss_by_day[-1] / 2**20:.1f} MiB, "
                    f"{time.perf_counter() - t_wall:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        pipe.close(end)
        out = {
            "sample_rate_hz": sr,
            "simulated_days": days,
            "period_s": period_s,
            "burst_s": burst_s,
            "audio_processed_s": round(days * 86400.0 / period_s * burst_s),
            "wall_s": round(time.perf_counter() - t_wall, 1),
            "reports": pipe.stats.reports,
            "heartbeats": pipe.stats.heartbeats,
            "streams": pipe.stats.streams,
            "buffer_segments_end": len(buf.segments),
            "buffer_span_max_h": round(max_span / 3600.0, 3),
            "buffer_disk_bytes_end": buf.disk_bytes,
            "rss_mib_by_day": [round(r / 2**20, 1) for r in rss_by_day],
            "rss_growth_day1_to_day7_mib": round((rss_by_day[-1] - rss_by_day[0]) / 2**20, 1),
        }
        buf.close()
        spool.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="audio per speed run")
    ap.add_argument("--rates", default="12000,48000", help="sample rates (Hz), comma-separated")
    ap.add_argument("--block-s", type=float, default=0.1)
    ap.add_argument("--period-s", type=float, default=300.0, help="week run: clock step")
    ap.add_argument("--burst-s", type=float, default=4.0, help="week run: audio per step")
    ap.add_argument("--week-rate", type=int, default=12000)
    ap.add_argument("--scorers", default="classifier,impulsiveness", help="sensor scores")
    ap.add_argument("--skip-week", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    result: dict[str, object] = {
        "benchmark": "sensor_pipeline",
        "cpus_used": 1,
        "loadavg_1min": os.getloadavg()[0],
        "loadavg_at_start": os.getloadavg(),
        "speed": [
            bench_speed(int(r), args.seconds, args.block_s, scorer)
            for scorer in args.scorers.split(",")
            for r in args.rates.split(",")
        ],
    }
    if not args.skip_week:
        result["week"] = bench_week(args.week_rate, args.period_s, args.burst_s, args.block_s)
    result["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
