"""Association alone on the NYE bench's night: which simulated shots never become a shot.

The same night as ``bench/nye_replay.py`` (schedule, network, shots only where a precinct
answers), with no server: every shot's reports become pulses fed to the production
``Pipeline`` (association, location, incidents) on a replay clock at the time each report
is delivered: its arrival plus the sensor's 1 s post-roll plus a delay of up to
``--jitter-s`` (uniform, seeded; a live server receives reports out of arrival order), the
pipeline ticking as ``shotwatch serve`` has it (``LIVE_TICK_EVERY_S``, and every 50 ms when no
report comes), the associator's provisional updates drained. The truth is read only after
association, to score it: a truth shot is found when a located shot takes most of its
pulses from it. Reported: shots found and missed, recall by the number of sensors that heard
the shot, the associator's rejection counts, and for each missed shot what became of the
hypotheses near it (``--explain N``).

    PYTHONPATH=src:. python3 bench/nye_association.py --data ../shared/data \\
        --from-min 690 --minutes 60 [--jitter-s 1.5] [--explain 20] [--out F]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench.nye_replay import schedule
from bench.shot_network import ShotNetwork, TruthShot
from shotwatch.core.clock import ReplayClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Pulse, Sensor
from shotwatch.core.settings import Settings
from shotwatch.dispatch.boundaries import load_boundaries
from shotwatch.pipeline import LIVE_TICK_EVERY_S, ListSink, Pipeline

POST_ROLL_S = 1.0  # a sensor sends a report when its 1 s of post-roll is recorded
_PLACE = re.compile(r"x=(-?[\d.]+) y=(-?[\d.]+) t0=([\d.]+)")


def night(
    data: Path, from_min: float, minutes: float, seed: int
) -> tuple[ShotNetwork, list[TruthShot]]:
    """The bench's network and the shots of the slice (as nye_replay builds them)."""
    sched = schedule(10_000, 100, seed)
    sl = sched[(sched >= from_min) & (sched < from_min + minutes)]
    network = ShotNetwork(side_m=12_000.0, seed=seed)
    nypd = load_boundaries(data / "boundaries" / "nypd-precincts.geojson")
    rp = nypd.boundary("75").geometry.representative_point()
    frame = LocalFrame(rp.y, rp.x)

    def on_land(x: float, y: float) -> bool:
        lat, lon, _ = frame.to_geo(x, y, 0.0)
        return nypd.route(lat, lon).unit_id is not None

    origin = 1.0e6
    shots = [
        network.shot(n, origin + float(m - from_min) * 60.0, accept=on_land)
        for n, m in enumerate(sl, start=1)
    ]
    return network, shots


def run(args: argparse.Namespace) -> dict[str, Any]:
    network, truth = night(Path(args.data), args.from_min, args.minutes, args.seed)
    sensors = [
        Sensor(s, float(x), float(y), float(z))
        for s, x, y, z in zip(network.serials, network.x, network.y, network.z, strict=True)
    ]
    rng = np.random.default_rng(args.seed + 100)
    owner: dict[str, int] = {}
    arrivals: list[tuple[float, Pulse]] = []
    for sh in truth:
        for k, r in enumerate(sh.reports):
            pid = f"{sh.n}-{k}"
            owner[pid] = sh.n
            delivered = r.arrival_s + POST_ROLL_S + float(rng.uniform(0.0, args.jitter_s))
            arrivals.append(
                (delivered, Pulse(pid, r.serial, r.arrival_s, r.x_m, r.y_m, r.z_m, snr_db=20.0))
            )
    arrivals.sort(key=lambda a: a[0])
    settings = Settings()
    clock = ReplayClock(arrivals[0][0] if arrivals else 0.0)
    sink = ListSink()
    pipe = Pipeline(
        settings, clock, sink, c_mps=network.c, sensors=sensors, tick_every_s=LIVE_TICK_EVERY_S
    )
    assoc = pipe.associator
    if args.explain:
        assoc.trace = []  # type: ignore[attr-defined]
    drain = assoc.drain_provisional  # type: ignore[attr-defined]
    cpu0 = time.process_time()
    next_tick = clock.now() + 0.05
    for delivered, p in arrivals:
        while delivered > next_tick:  # no report for a while: the server's ticker
            clock.advance_to(next_tick)
            pipe.tick()
            drain()
            next_tick += 0.05
        clock.advance_to(delivered)
        pipe.feed(p)
        drain()
    pipe.finish()
    cpu_s = time.process_time() - cpu0
    shots = sink.shot_list
    # evaluation: the truth shot each located shot is about (most of its pulses)
    found: Counter[int] = Counter()
    for s in shots:
        n, _ = Counter(owner[p] for p in s.pulse_ids).most_common(1)[0]
        found[n] += 1
    missed = [sh for sh in truth if sh.n not in found]
    heard = Counter(len(sh.reports) for sh in truth)
    heard_missed = Counter(len(sh.reports) for sh in missed)
    out: dict[str, Any] = {
        "benchmark": "nye_association",
        "command": " ".join(["python3", *sys.argv]),
        "slice": {"from_min_after_noon": args.from_min, "minutes": args.minutes},
        "jitter_s": args.jitter_s,
        "truth_shots": len(truth),
        "pulses": len(arrivals),
        "located_shots": len(shots),
        "truth_shots_found": len(found),
        "truth_shots_missed": len(missed),
        "truth_shots_split": sum(1 for v in found.values() if v > 1),
        "recall": round(len(found) / max(len(truth), 1), 5),
        "recall_by_sensors_heard": {
            str(k): {"shots": heard[k], "missed": heard_missed[k]} for k in sorted(heard)
        },
        "rejected": dict(assoc.stats.rejected),  # type: ignore[attr-defined]
        "incidents": len(sink.incident_list),
        "cpu_s": round(cpu_s, 2),
    }
    if args.explain:
        trace = assoc.trace or []  # type: ignore[attr-defined]
        out["missed"] = [explain(sh, truth, found, trace) for sh in missed[: args.explain]]
    return out


def explain(
    sh: TruthShot, truth: list[TruthShot], found: Counter[int], trace: list[str]
) -> dict[str, Any]:
    """What the associator's trace says near one missed shot (evaluation only)."""
    lines = []
    for line in trace:
        m = _PLACE.search(line)
        if m is None:
            continue
        x, y, t0 = (float(g) for g in m.groups())
        if abs(t0 - sh.t_fire_s) < 3.0 and math.hypot(x - sh.x_m, y - sh.y_m) < 800.0:
            lines.append(line[:240])
    return {
        "n": sh.n,
        "sensors": [(r.serial, round(r.arrival_s - sh.t_fire_s, 3)) for r in sh.reports],
        "trace_near": lines,
        "other_shots_near": [
            {
                "n": o.n,
                "dt_s": round(o.t_fire_s - sh.t_fire_s, 2),
                "dist_m": round(math.hypot(o.x_m - sh.x_m, o.y_m - sh.y_m)),
                "sensors": len(o.reports),
                "found": o.n in found,
            }
            for o in truth
            if o.n != sh.n
            and abs(o.t_fire_s - sh.t_fire_s) < 5.0
            and math.hypot(o.x_m - sh.x_m, o.y_m - sh.y_m) < 2500.0
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--from-min", type=float, default=690.0, help="slice start (min after noon)")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jitter-s", type=float, default=0.0, help="delivery delay, up to (s)")
    ap.add_argument("--explain", type=int, default=0, help="trace this many missed shots")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not (Path(args.data) / "boundaries" / "nypd-precincts.geojson").exists():
        print(f"nye_association: {args.data}/boundaries/nypd-precincts.geojson not found")
        return 2
    result = run(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
