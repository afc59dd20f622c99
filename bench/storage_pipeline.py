"""Storage and pipeline-flow benchmark: prints one JSON object.

    PYTHONPATH=src python3 bench/storage_pipeline.py [--pulses 20000] [--incidents 2000]
        [--pg URL | --no-pg] [--demo]

Measures, on SQLite (a temporary file) and PostgreSQL (a private schema, dropped afterwards):
pulse ingest (new pulses/s, re-ingest of the same pulses/s), shot + incident saves/s, and the
latency of a one-hour incident window query over the stored incidents. With --demo it also
times ``shotwatch demo`` end to end on a fresh SQLite file (wall and CPU seconds, under the
profiler, so a little slower than a plain run) and reports how much of that time the store
took (the rest is association, location and incident building).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import math
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text

from shotwatch.core.model import Incident, Provenance, Pulse, ShotLocation
from shotwatch.storage import service as svc
from shotwatch.storage.db import make_engine, migrate, session_factory

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/shotwatch_test"
T0 = 1_780_000_000.0
PROV = Provenance.automatic("bench", "1", T0)


def make_objects(
    n_pulses: int, n_incidents: int, seed: int = 1
) -> tuple[list[Pulse], list[ShotLocation], list[Incident]]:
    rng = random.Random(seed)
    pulses = [
        Pulse(
            pulse_id=f"p-{i:08d}",
            sensor=f"S{rng.randrange(2000):04d}",
            t_s=T0 + i * 0.05,
            x_m=rng.uniform(0, 10_000),
            y_m=rng.uniform(0, 10_000),
            z_m=6.0,
            snr_db=rng.uniform(6, 40),
            level_db_spl=rng.uniform(70, 120),
            clock_error_s=0.0003,
            provenance=PROV,
        )
        for i in range(n_pulses)
    ]
    shots, incidents = [], []
    for k in range(n_incidents):
        members = pulses[(k * 5) % (n_pulses - 5) :][:5]
        shot = ShotLocation(
            shot_id=f"shot-{k:07d}",
            t0_s=members[0].t_s - 1.0,
            x_m=rng.uniform(0, 10_000),
            y_m=rng.uniform(0, 10_000),
            z_m=1.5,
            pulse_ids=tuple(p.pulse_id for p in members),
            sensors=tuple(p.sensor for p in members),
            residuals_s={p.pulse_id: rng.gauss(0, 0.001) for p in members},
            residual_rms_s=0.001,
            uncertainty_m=4.0,
            ellipse=None,
            covariance=((4.0, 0.1), (0.1, 3.0)),
            dims=2,
            quality=0.9,
            provenance=PROV,
        )
        shots.append(shot)
        start = T0 + k * 30.0
        incidents.append(
            Incident(
                incident_id=f"inc-{k:07d}",
                shot_ids=(shot.shot_id,),
                start_s=start,
                end_s=start + 2.0,
                x_m=shot.x_m,
                y_m=shot.y_m,
                rounds=1,
                shooters=1,
                shooter_positions=((shot.x_m, shot.y_m),),
                automatic=False,
                cadence_rps=None,
                movement=None,
                provenance=PROV,
            )
        )
    return pulses, shots, incidents


def bench_backend(
    url: str, pulses: list[Pulse], shots: list[ShotLocation], incidents: list[Incident]
) -> dict[str, float]:
    migrate(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    out: dict[str, float] = {}
    t = time.perf_counter()
    for i in range(0, len(pulses), 500):  # the pipeline's StoreSink batch size
        with factory.begin() as s:
            svc.save_pulses(pulses[i : i + 500], session=s)
    out["pulse_ingest_new_per_s"] = len(pulses) / (time.perf_counter() - t)
    t = time.perf_counter()
    dup = 0
    for i in range(0, len(pulses), 500):
        with factory.begin() as s:
            dup += len(svc.save_pulses(pulses[i : i + 500], session=s).duplicates)
    assert dup == len(pulses)
    out["pulse_reingest_duplicates_per_s"] = len(pulses) / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(0, len(shots), 50):
        with factory.begin() as s:
            svc.save_shots(shots[i : i + 50], session=s)
            svc.save_incidents(incidents[i : i + 50], session=s)
    out["shot_plus_incident_saves_per_s"] = len(shots) / (time.perf_counter() - t)
    lat = []
    rng = random.Random(2)
    span = incidents[-1].end_s - T0
    with factory() as s:
        for _ in range(50):
            a = T0 + rng.uniform(0, span)
            t = time.perf_counter()
            got = svc.query_incidents(session=s, start_s=a, end_s=a + 3600.0)
            lat.append(time.perf_counter() - t)
            assert len(got) <= 121
    out["incident_window_1h_query_p50_ms"] = 1000 * statistics.median(lat)
    out["incident_window_1h_query_max_ms"] = 1000 * max(lat)
    engine.dispose()
    return {k: round(v, 2) for k, v in out.items()}


def bench_demo() -> dict[str, float]:
    from shotwatch.cli.main import main

    with tempfile.TemporaryDirectory() as d:
        summary = Path(d) / "summary.json"
        prof = cProfile.Profile()
        t, cpu = time.perf_counter(), time.process_time()
        prof.enable()
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            rc = main(["demo", "--db", f"sqlite:///{d}/demo.db", "--summary-json", str(summary)])
        prof.disable()
        wall = time.perf_counter() - t
        cpu = time.process_time() - cpu
        assert rc == 0
        stats = pstats.Stats(prof)
        store_s = sum(
            v[3]
            for k, v in stats.stats.items()
            if k[2] == "_write" and "pipeline" in k[0]  # type: ignore[attr-defined]
        )
        data = json.loads(summary.read_text())
    return {
        "demo_wall_s": round(wall, 1),
        "demo_cpu_s": round(cpu, 1),
        "demo_store_s": round(store_s, 1),
        "demo_store_share_of_wall": round(store_s / wall, 3) if wall else math.nan,
        "demo_summary": data,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pulses", type=int, default=20_000)
    ap.add_argument("--incidents", type=int, default=2_000)
    ap.add_argument("--pg", default=PG_DEFAULT)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--demo", action="store_true")
    args = ap.parse_args()
    pulses, shots, incidents = make_objects(args.pulses, args.incidents)
    result: dict[str, object] = {"pulses": args.pulses, "incidents": args.incidents}
    with tempfile.TemporaryDirectory() as d:
        result["sqlite"] = bench_backend(f"sqlite:///{d}/bench.db", pulses, shots, incidents)
    if not args.no_pg:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.pg)
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            url = f"{args.pg}?options={quote(f'-csearch_path={schema}')}"
            result["postgresql"] = bench_backend(url, pulses, shots, incidents)
        finally:
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    if args.demo:
        result.update(bench_demo())
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
