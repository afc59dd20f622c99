"""Speed at city load (issue #2 target 5): association + location throughput and latency.

A 2,000-sensor city (8 sensors/km2, ~250 km2). Two phases, each simulated by the scenario
simulator and fed in arrival order to the product's Associator on one core:

- normal: gunfire incidents across the city plus 10 unrelated impulses per sensor per hour;
- fireworks night: 100x that impulse rate (1,000 per sensor per hour), half of it from
  fireworks shows all over the city (coherent: each shell is heard by many sensors, so the
  associator really has to form and locate them) and half unrelated single-sensor impulses,
  with gunfire still going on.

Throughput = pulses / CPU seconds spent inside ``Associator.feed``/``flush`` (target >= 20,000
pulses/s). Latency per located shot = processing time from feeding the shot's last pulse to
the associator returning the shot (target p99 <= 50 ms); reported separately is the stream
time the associator held the shot (pulse time of the feed that released it minus the shot's
last pulse time), i.e. its configured wait, and the sum of both.

    PYTHONPATH=src python3 -m bench.city_load --sensors 2000 --normal-s 600 --burst-s 120
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import gc
import json
import math
import time
from typing import Any

import numpy as np

from bench.simeval import associator_available, score_association
from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.settings import Settings
from shotwatch.sim import SimResult, parse_scenario, simulate_pulses

DENSITY_PER_KM2 = 8.0


def city_scenario(
    name: str,
    *,
    sensors: int,
    duration_s: float,
    impulses_per_sensor_hour: float,
    gunfire_per_hour: float,
    fireworks_bursts: int,
    seed: int,
) -> dict[str, Any]:
    spacing = 1000.0 / math.sqrt(DENSITY_PER_KM2)
    ny = max(d for d in range(1, math.isqrt(sensors) + 1) if sensors % d == 0)
    nx = sensors // ny  # an nx x ny grid holds exactly the requested number of sensors
    area = [nx * spacing, ny * spacing]
    rng = np.random.default_rng([seed, 4242])
    sources: list[dict[str, Any]] = []
    n_gun = max(1, round(gunfire_per_hour * duration_s / 3600.0))
    for k in range(n_gun):
        sources.append(
            {
                "kind": "gunfire",
                "name": f"gun{k}",
                "position_m": [float(rng.uniform(0, area[0])), float(rng.uniform(0, area[1])), 1.5],
                "start_s": float(rng.uniform(0, max(duration_s - 10, 1))),
                "calibre": str(rng.choice(["9mm", "40", "45", "22", "556"])),
                "rounds": int(rng.integers(1, 8)),
                "cadence_rps": float(rng.uniform(0.8, 12.0)),
            }
        )
    shows = max(1, fireworks_bursts // 20) if fireworks_bursts else 0
    for k in range(shows):
        sources.append(
            {
                "kind": "fireworks",
                "name": f"show{k}",
                "position_m": [float(rng.uniform(0, area[0])), float(rng.uniform(0, area[1])), 0.0],
                "radius_m": 80.0,
                "bursts": max(1, fireworks_bursts // shows),
                "duration_s": duration_s,
                "crackles_per_burst": 8,
            }
        )
    return {
        "name": name,
        "duration_s": duration_s,
        "sensors": {
            "layout": "grid",
            "area_m": area,
            "density_per_km2": DENSITY_PER_KM2,
            "jitter_m": 50.0,
            "clock_error_bound_s": 0.0003,
        },
        "environment": {"temperature_c": 24.0},
        "detection": {
            "pick_error_s": 0.0007,
            "false_pulses_per_sensor_per_hour": impulses_per_sensor_hour,
        },
        "sources": sources,
    }


def pulses_per_shell(sensors: int, seed: int) -> float:
    """Pilot: pulses one fireworks shell (launch, burst, crackles) produces in this city."""
    data = city_scenario(
        "pilot",
        sensors=sensors,
        duration_s=60.0,
        impulses_per_sensor_hour=0.0,
        gunfire_per_hour=0.0,
        fireworks_bursts=40,
        seed=seed,
    )
    data["sources"] = [s for s in data["sources"] if s["kind"] == "fireworks"]
    res = simulate_pulses(parse_scenario(data, "pilot"), seed)
    return max(len(res.pulses), 1) / 40.0


def feed_timed(res: SimResult, c_mps: float, settings: Settings) -> dict[str, Any]:
    """Feed pulses in order; measure CPU time, per-shot processing latency and hold time."""
    from shotwatch.association import Associator

    assoc = Associator(settings, c_mps, res.sensors)
    pulses = sorted(res.pulses, key=lambda p: p.t_s)
    fed_at: dict[str, float] = {}
    t_of = {p.pulse_id: p.t_s for p in pulses}
    shots = []
    proc_ms: list[float] = []
    hold_ms: list[float] = []
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for p in pulses:
        fed_at[p.pulse_id] = time.perf_counter()
        out = assoc.feed(p)
        if out:
            now = time.perf_counter()
            for s in out:
                last = max(s.pulse_ids, key=lambda pid: t_of.get(pid, -math.inf))
                proc_ms.append((now - fed_at[last]) * 1e3)
                hold_ms.append((p.t_s - t_of[last]) * 1e3)
            shots.extend(out)
    tail = assoc.flush()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    shots.extend(tail)
    score = score_association(res, shots).as_dict()

    def pct(v: list[float], q: float) -> float | None:
        return round(float(np.percentile(v, q)), 2) if v else None

    total = [a + b for a, b in zip(proc_ms, hold_ms, strict=True)]
    return {
        "pulses": len(pulses),
        "shots": len(shots),
        "shots_at_flush": len(tail),
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "pulses_per_cpu_s": round(len(pulses) / cpu, 1) if cpu > 0 else None,
        "latency_processing_ms": {
            "p50": pct(proc_ms, 50),
            "p99": pct(proc_ms, 99),
            "max": pct(proc_ms, 100),
        },
        "hold_stream_ms": {
            "p50": pct(hold_ms, 50),
            "p99": pct(hold_ms, 99),
            "max": pct(hold_ms, 100),
        },
        "latency_total_ms": {"p50": pct(total, 50), "p99": pct(total, 99)},
        "association": score,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sensors", type=int, default=2000)
    ap.add_argument("--normal-s", type=float, default=600.0, help="normal phase length")
    ap.add_argument("--burst-s", type=float, default=120.0, help="fireworks burst length")
    ap.add_argument("--gunfire-per-hour", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--simulate-only", action="store_true", help="only build the pulse streams")
    args = ap.parse_args()
    settings = Settings()
    c = speed_of_sound_mps(24.0)
    out: dict[str, Any] = {"sensors": args.sensors, "seed": args.seed}
    # fireworks: half the burst impulse rate comes from shells (how many pulses a shell gives
    # in this city is measured by a pilot run), half from unrelated single-sensor impulses
    burst_rate = 1000.0
    coherent_pulses = 0.5 * burst_rate * args.sensors * args.burst_s / 3600.0
    per_shell = pulses_per_shell(args.sensors, args.seed)
    out["pulses_per_fireworks_shell"] = round(per_shell, 1)
    phases = {
        "normal": dict(impulses_per_sensor_hour=10.0, fireworks_bursts=0, duration_s=args.normal_s),
        "fireworks_night": dict(
            impulses_per_sensor_hour=0.5 * burst_rate,
            fireworks_bursts=max(1, round(coherent_pulses / per_shell)),
            duration_s=args.burst_s,
        ),
    }
    for name, kw in phases.items():
        t0 = time.perf_counter()
        data = city_scenario(
            name,
            sensors=args.sensors,
            gunfire_per_hour=args.gunfire_per_hour,
            seed=args.seed,
            **kw,  # type: ignore[arg-type]
        )
        res = simulate_pulses(parse_scenario(data, name), args.seed)
        sim_s = time.perf_counter() - t0
        n_false = sum(1 for t in res.truth.pulses.values() if t.event_id is None)
        per_sensor_hour = len(res.pulses) / args.sensors / (kw["duration_s"] / 3600.0)
        phase: dict[str, Any] = {
            "duration_s": kw["duration_s"],
            "pulses": len(res.pulses),
            "unrelated_pulses": n_false,
            "pulses_per_sensor_hour": round(per_sensor_hour, 1),
            "gunshots": sum(1 for e in res.truth.events if e.is_gunshot),
            "emissions": len(res.truth.events),
            "simulate_s": round(sim_s, 2),
        }
        if not args.simulate_only:
            if associator_available():
                phase["pipeline"] = feed_timed(res, c, settings)
            else:
                phase["pipeline"] = {"error": "shotwatch.association.Associator not available"}
        out[name] = phase
        del res
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
