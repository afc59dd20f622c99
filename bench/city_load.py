"""Speed at city load (issue #2 target 5): association + location throughput and latency.

A 2,000-sensor city (8 sensors/km2, ~250 km2). Two phases, each simulated by the scenario
simulator and fed in arrival order to the product's Associator on one core:

- normal: gunfire incidents across the city plus 10 unrelated impulses per sensor per hour;
- fireworks night: 100x that impulse rate (1,000 per sensor per hour), half of it from
  fireworks shows all over the city (coherent: each shell is heard by many sensors, so the
  associator really has to form and locate them) and half unrelated single-sensor impulses,
  with gunfire still going on.

The stream is replayed as live: pulses in arrival order plus a ``flush(until_s)`` clock tick
every ``--tick-s``, provisional updates drained after each call. Throughput = pulses / CPU
seconds spent inside ``Associator.feed``/``flush``/``drain_provisional`` (target >= 20,000
pulses/s). Per final shot, from its last pulse: to the first located version holding it, and
to the final shot (target p99 <= 50 ms for the former; see ``feed_timed``). A fixed reference
workload timed at start and end is the same-run baseline for the machine's load.

    PYTHONPATH=src:. python bench/city_load.py --sensors 2000 --normal-s 600 --burst-s 120
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import gc
import json
import math
import sys
import time
from typing import Any

import numpy as np

from bench.simeval import locatable_events, score_association, shot_event
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


def reference_workload() -> float:
    """A fixed CPU job (numpy sorts and a Python loop) timed in CPU seconds: run at the start
    and the end of the benchmark, it shows how fast this machine was at the time (load)."""
    rng = np.random.default_rng(7)
    cpu0 = time.process_time()
    acc = 0.0
    for _ in range(20):
        acc += float(np.sort(rng.random(200_000))[100_000])
    for k in range(300_000):
        acc += k % 7
    return round(time.process_time() - cpu0, 3)


def feed_timed(
    res: SimResult,
    c_mps: float,
    settings: Settings,
    *,
    tick_s: float = 0.05,
    limit: int | None = None,
) -> tuple[dict[str, Any], list[Any]]:
    """Replay the stream as live: pulses in arrival order and a ``flush(until_s)`` clock tick
    every ``tick_s`` of stream time, the provisional updates drained after every call (as
    the server does). Measures the CPU time of all associator calls (association, location,
    evidence and the drain), and per final shot, from its last pulse (the latest-arriving
    member):

    - ``located_ms``: to the first located version holding that pulse: the stream time the
      associator held it (0 when it joined at once) plus the CPU time of the call that
      emitted it; the issue's "last pulse to located shot", valid when ``real_time_factor``
      > 1 (the associator keeps up, so no queue builds);
    - ``final_ms``: to the final shot (the hold until every sensor that could still hear it
      had the time to, plus that call's CPU time).
    """
    from shotwatch.association import Associator

    assoc = Associator(settings, c_mps, res.sensors)  # builds its kernels before timing
    pulses = sorted(res.pulses, key=lambda p: p.t_s)
    if limit is not None:
        pulses = pulses[:limit]
    t_of = {p.pulse_id: p.t_s for p in pulses}
    shots: list[Any] = []
    first_seen: dict[str, float] = {}  # pulse id -> stream time + cpu of its first emission
    final_ms: list[float] = []
    located_ms: list[float] = []
    latency_of: dict[str, tuple[float, float]] = {}

    def took(out: list[Any], stream_now: float, cpu_s: float) -> None:
        for upd in assoc.drain_provisional():
            for pid in upd.shot.pulse_ids:
                first_seen.setdefault(pid, stream_now + cpu_s)
        for s in out:
            last_id = max(s.pulse_ids, key=lambda pid: t_of.get(pid, -math.inf))
            last = t_of.get(last_id, stream_now)
            final_ms.append((max(stream_now - last, 0.0) + cpu_s) * 1e3)
            located_ms.append(max(first_seen.get(last_id, stream_now + cpu_s) - last, 0.0) * 1e3)
            latency_of[s.shot_id] = (located_ms[-1], final_ms[-1])
        shots.extend(out)

    gc.collect()
    gc.disable()
    cpu_total = 0.0
    wall0 = time.perf_counter()
    next_tick = pulses[0].t_s + tick_s if pulses else 0.0
    for p in pulses:
        while p.t_s > next_tick:
            c0 = time.process_time()
            out = assoc.flush(until_s=next_tick)
            dt = time.process_time() - c0
            cpu_total += dt
            took(out, next_tick, dt)
            next_tick += tick_s
        c0 = time.process_time()
        out = assoc.feed(p)
        dt = time.process_time() - c0
        cpu_total += dt
        took(out, p.t_s, dt)
    c0 = time.process_time()
    tail = assoc.flush()
    dt = time.process_time() - c0
    cpu_total += dt
    took(tail, pulses[-1].t_s if pulses else 0.0, dt)
    wall = time.perf_counter() - wall0
    gc.enable()
    score = score_association(res, shots).as_dict()
    span_s = (pulses[-1].t_s - pulses[0].t_s) if len(pulses) > 1 else 0.0

    def pct(v: list[float], q: float) -> float | None:
        return round(float(np.percentile(v, q)), 2) if v else None

    st = assoc.stats
    metrics = {
        "pulses": len(pulses),
        "stream_s": round(span_s, 1),
        "shots": len(shots),
        "shots_at_end_of_input": len(tail),
        "cpu_s": round(cpu_total, 3),
        "wall_s": round(wall, 2),
        "pulses_per_cpu_s": round(len(pulses) / cpu_total, 1) if cpu_total > 0 else None,
        "real_time_factor": round(span_s / cpu_total, 1) if cpu_total > 0 else None,
        "last_pulse_to_located_ms": {
            "p50": pct(located_ms, 50),
            "p99": pct(located_ms, 99),
            "max": pct(located_ms, 100),
        },
        "last_pulse_to_final_ms": {
            "p50": pct(final_ms, 50),
            "p99": pct(final_ms, 99),
            "max": pct(final_ms, 100),
        },
        "hypotheses": st.hypotheses,
        "nucleation_tries": st.nucleation_tries,
        "rejected": dict(st.rejected),
        "association": score,
    }
    # the same latencies per kind of emission the shot is (evaluation: from the truth)
    kinds = {e.event_id: e.kind for e in res.truth.events}
    by_kind: dict[str, list[float]] = {}
    for s in shots:
        ev = shot_event(res, s)
        if ev is not None and s.shot_id in latency_of:
            by_kind.setdefault(kinds[ev], []).append(latency_of[s.shot_id][0])
    metrics["last_pulse_to_located_ms_by_kind"] = {
        k: {"shots": len(v), "p50": pct(v, 50), "p99": pct(v, 99), "max": pct(v, 100)}
        for k, v in sorted(by_kind.items())
    }
    return metrics, shots


def score_by_kind(res: SimResult, shots: list[Any]) -> dict[str, Any]:
    """Recall per kind of emission (gunshots, fireworks launches and bursts, crackles), from
    the truth (evaluation only): a true emission is found when a shot's pulses are mostly
    its own."""
    kinds: dict[str, str] = {e.event_id: e.kind for e in res.truth.events}
    locatable = locatable_events(res)
    found = {ev for s in shots if (ev := shot_event(res, s)) is not None}
    out: dict[str, Any] = {}
    for kind in sorted({kinds[e] for e in locatable}):
        evs = [e for e in locatable if kinds[e] == kind]
        hit = sum(1 for e in evs if e in found)
        out[kind] = {"locatable": len(evs), "found": hit, "recall": round(hit / len(evs), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sensors", type=int, default=2000)
    ap.add_argument("--normal-s", type=float, default=600.0, help="normal phase length")
    ap.add_argument("--burst-s", type=float, default=120.0, help="fireworks burst length")
    ap.add_argument("--gunfire-per-hour", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--simulate-only", action="store_true", help="only build the pulse streams")
    ap.add_argument("--tick-s", type=float, default=0.05, help="flush(until_s) clock tick")
    ap.add_argument(
        "--burst-coherent-share",
        type=float,
        default=0.5,
        help="share of the burst impulses that come from fireworks shells heard by many sensors "
        "(the rest are single-sensor impulses); 0 = all unrelated single-sensor impulses",
    )
    args = ap.parse_args()
    settings = Settings()
    c = speed_of_sound_mps(24.0)
    out: dict[str, Any] = {
        "command": "PYTHONPATH=src:. python bench/city_load.py " + " ".join(sys.argv[1:]),
        "sensors": args.sensors,
        "seed": args.seed,
        "tick_s": args.tick_s,
        "targets": {"pulses_per_cpu_s": 20000, "latency_p99_ms": 50},
        "load_at_start": os.getloadavg(),
        "reference_workload_cpu_s_start": reference_workload(),
    }
    # fireworks: a share of the burst impulse rate comes from shells (how many pulses a shell
    # gives in this city is measured by a pilot run), the rest from single-sensor impulses
    burst_rate = 1000.0
    share = min(max(args.burst_coherent_share, 0.0), 1.0)
    out["burst_coherent_share"] = share
    coherent_pulses = share * burst_rate * args.sensors * args.burst_s / 3600.0
    per_shell = pulses_per_shell(args.sensors, args.seed)
    out["pulses_per_fireworks_shell"] = round(per_shell, 1)
    phases = {
        "normal": dict(impulses_per_sensor_hour=10.0, fireworks_bursts=0, duration_s=args.normal_s),
        "fireworks_night": dict(
            impulses_per_sensor_hour=(1.0 - share) * burst_rate,
            fireworks_bursts=round(coherent_pulses / per_shell),
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
            phase["pipeline"], shots = feed_timed(res, c, settings, tick_s=args.tick_s)
            phase["association_by_kind"] = score_by_kind(res, shots)
        out[name] = phase
        del res
    out["reference_workload_cpu_s_end"] = reference_workload()
    out["load_at_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
