"""Policy and audit benchmark: decision latency, audited requests/s on PostgreSQL, and the
time to verify a large audit log. Prints JSON.

    python3 bench/policy_audit.py --decisions 20000 --audit-seconds 10 --threads 8,32 \
        --verify-entries 1000000

PostgreSQL runs use a throw-away database created on the server named by --pg-url.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shotwatch.audit.log import AuditLog
from shotwatch.core.clock import SystemClock
from shotwatch.policy.actions import Action
from shotwatch.policy.engine import Actor, Context, PolicyEngine, Resource, default_engine
from shotwatch.policy.service import Authorizer
from shotwatch.storage.db import make_engine, migrate

PG_URL = os.environ.get(
    "SHOTWATCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/shotwatch_test"
)
NOW_S = 1_800_000_000.0


def requests_mix() -> list[tuple[Actor, Action, Resource, Context]]:
    """Every role x action of every policy, in a base and a few deny situations."""
    engine = default_engine()
    out = []
    for pol in engine.policies:
        pid = pol.policy.id
        for role in pol.roles:
            for action in Action:
                cands = [
                    p for p in pol.permit if action.spec.value in p.actions and role.name in p.roles
                ]
                p = cands[0] if cands else None
                actor = Actor(
                    f"{role.name}-1",
                    pol.policy.agency,
                    role.name,
                    pol.ranks[-1],
                    "cmd-A",
                    (p.bureaus or pol.bureaus or [""])[0] if p else "",
                    access=frozenset({pid}),
                    trained=frozenset({pid}),
                )
                res = Resource(
                    "r-1",
                    pid,
                    (p.resource_kinds or ["incident"])[0] if p else "incident",
                    "cmd-A",
                    created_at_s=NOW_S - 3600,
                    attrs=dict(p.resource_attrs) if p else {},
                )
                ctx = Context(
                    NOW_S,
                    purpose=((p.purposes if p else None) or pol.purposes)[0],
                    reference="C-1",
                    workstation=(pol.workstations or [""])[0],
                    disclosure_basis="crime_investigation",
                )
                out.append((actor, action, res, ctx))
                out.append((replace(actor, command="cmd-B", access=frozenset()), action, res, ctx))
                out.append((actor, action, res, replace(ctx, purpose="immigration_enforcement")))
                out.append((actor, action, res, replace(ctx, remote=True)))
    return out


def _quantiles(ns: list[int]) -> dict[str, float]:
    v = sorted(ns)

    def q(f: float) -> float:
        return round(v[min(len(v) - 1, int(f * len(v)))] / 1e6, 4)

    return {"p50_ms": q(0.50), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": q(1.0)}


def bench_decide(n: int) -> dict[str, Any]:
    """First every distinct request once on a fresh engine (cold: Cedar entities built and
    parsed for a new actor and resource), then ``n`` decisions cycling over them (warm:
    the same officers asking again, the steady state of a working shift)."""
    engine = PolicyEngine(default_engine().policies)
    mix = requests_mix()
    cold_wall, cold_cpu = [], []
    for a, act, r, c in mix:
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        engine.decide(a, act, r, c)
        cold_wall.append(time.perf_counter_ns() - t0)
        cold_cpu.append(time.thread_time_ns() - c0)
    times = []
    cpu = []
    allowed = 0
    for i in range(n):
        a, act, r, c = mix[i % len(mix)]
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        d = engine.decide(a, act, r, c)
        times.append(time.perf_counter_ns() - t0)
        cpu.append(time.thread_time_ns() - c0)
        allowed += d.allow
    warm = _quantiles(times)
    warm_cpu = _quantiles(cpu)
    cold = _quantiles(cold_wall)
    cold_c = _quantiles(cold_cpu)
    return {
        "decisions": n,
        "distinct_requests": len(mix),
        "allowed_fraction": round(allowed / n, 3),
        **warm,
        "mean_ms": round(statistics.fmean(times) / 1e6, 4),
        "cpu_p50_ms": warm_cpu["p50_ms"],
        "cpu_p99_ms": warm_cpu["p99_ms"],
        "cold_p50_ms": cold["p50_ms"],
        "cold_p99_ms": cold["p99_ms"],
        "cold_cpu_p50_ms": cold_c["p50_ms"],
        "cold_cpu_p99_ms": cold_c["p99_ms"],
        "target_p99_ms": 1.0,
    }


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (the PostgreSQL backend), if readable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FreshPg:
    def __init__(self, url: str) -> None:
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self.name = f"sw_bench_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_url(url).set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def bench_audited(
    pg_url: str, seconds: float, threads: list[int], commit_delay_s: float = 0.0
) -> dict[str, Any]:
    """Each request = decide() + an audit entry committed before the request returns."""
    db = FreshPg(pg_url)
    try:
        migrate(db.url)
        engine = make_engine(db.url)
        engine.pool.dispose()
        audit = AuditLog(
            engine,
            SystemClock(),
            signing_key=Ed25519PrivateKey.generate(),
            checkpoint_every=10_000,
            commit_delay_s=commit_delay_s,
        )
        authz = Authorizer(default_engine(), audit)
        mix = requests_mix()
        results: dict[str, Any] = {}
        # The one connection appends go through: its backend's CPU is the server's share.
        backend_pid = int(audit._writer().exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        for t in sorted({1, *threads}):
            counts = [0] * t
            lat: list[list[int]] = [[] for _ in range(t)]
            stop = time.perf_counter() + seconds

            def worker(
                k: int,
                counts: list[int] = counts,
                lat: list[list[int]] = lat,
                stop: float = stop,
                step: int = t,
            ) -> None:
                i = k
                mine = lat[k]
                while time.perf_counter() < stop:
                    a, act, r, c = mix[i % len(mix)]
                    t0 = time.perf_counter_ns()
                    authz.authorize(a, act, r, c)
                    mine.append(time.perf_counter_ns() - t0)
                    counts[k] += 1
                    i += step

            b0, e0 = audit.stats["batches"], audit.stats["entries"]
            s0 = _proc_cpu_s(backend_pid)
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            c0 = time.process_time()
            ths = [threading.Thread(target=worker, args=(k,)) for k in range(t)]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
            dt = time.perf_counter() - t0
            cpu = time.process_time() - c0
            s1 = _proc_cpu_s(backend_pid)
            n = max(1, sum(counts))
            server_ms = 1000 * (s1 - s0) / n if s0 is not None and s1 is not None else None
            client_ms = 1000 * cpu / n
            q = _quantiles([x for xs in lat for x in xs])
            results[f"threads_{t}"] = {
                "requests": sum(counts),
                "seconds": round(dt, 2),
                "requests_per_s": round(sum(counts) / dt, 1),
                "latency_p50_ms": q["p50_ms"],
                "latency_p99_ms": q["p99_ms"],
                "client_cpu_ms_per_request": round(client_ms, 3),
                "pg_backend_cpu_ms_per_request": (
                    round(server_ms, 3) if server_ms is not None else None
                ),
                # What one core would sustain if it did nothing else: client + PG backend
                # CPU per request (WAL flushing by other PostgreSQL processes not included).
                "requests_per_cpu_s": (
                    round(1000 / (client_ms + server_ms)) if server_ms is not None else None
                ),
                "mean_entries_per_commit": round(
                    (audit.stats["entries"] - e0) / max(1, audit.stats["batches"] - b0), 2
                ),
                "load_1min": round(load0, 2),
            }
        rep = audit.verify()
        results["log_entries"] = rep.entries
        results["log_verifies"] = rep.ok
        results["target_requests_per_s"] = 1000
        engine.dispose()
        return results
    finally:
        db.drop()


def fill(log: AuditLog, n: int, batch: int = 20_000) -> float:
    t0 = time.perf_counter()
    done = 0
    while done < n:
        k = min(batch, n - done)
        log.append_many(
            [
                {
                    "time_s": NOW_S + done + i,
                    "actor": f"user-{(done + i) % 977}",
                    "action": "incident.view",
                    "kind": "view",
                    "item": f"incident:{(done + i) % 50021}",
                    "purpose": "criminal_investigation",
                    "reference": f"C-{done + i}",
                    "allowed": True,
                    "rules": ["NYPD-SS-ACCESS"],
                    "reason": "permitted by NYPD-SS-ACCESS",
                    "policy": "nypd-shotspotter",
                    "detail": {},
                }
                for i in range(k)
            ]
        )
        done += k
    return time.perf_counter() - t0


def bench_verify(
    n: int,
    backend: str,
    pg_url: str,
    tmpdir: str | None = None,
    workers_list: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="sw-bench-", dir=tmpdir)
    db = FreshPg(pg_url) if backend == "postgresql" else None
    url = db.url if db else f"sqlite:///{Path(tmp) / 'audit.db'}"
    try:
        migrate(url)
        engine = make_engine(url)
        key = Ed25519PrivateKey.generate()
        log = AuditLog(engine, SystemClock(), signing_key=key, checkpoint_every=100_000)
        fill_s = fill(log, n)
        log.checkpoint()
        runs: dict[str, Any] = {}
        rep = None
        for workers in workers_list:
            # CPU of this process plus the worker processes it waits for (reaped children).
            ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            c0 = time.process_time()
            rep = log.verify(workers=workers)
            verify_s = time.perf_counter() - t0
            ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = time.process_time() - c0
            cpu += (ch1.ru_utime - ch0.ru_utime) + (ch1.ru_stime - ch0.ru_stime)
            assert rep.ok and rep.entries == n, rep
            runs[f"workers_{workers}"] = {
                "verify_s": round(verify_s, 2),
                "verify_cpu_s_client": round(cpu, 2),
                "entries_per_s": round(n / verify_s),
                "entries_per_cpu_s": round(n / cpu),
                "load_1min_after": round(os.getloadavg()[0], 2),
            }
        assert rep is not None
        engine.dispose()
        return {
            "backend": backend,
            "entries": n,
            "checkpoints": rep.checkpoints,
            "fill_s": round(fill_s, 1),
            **runs,
            "target_s_for_1M": 10.0,
        }
    finally:
        if db:
            db.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--audit-seconds", type=float, default=10.0)
    ap.add_argument("--threads", default="8,32", help="comma list of thread counts")
    ap.add_argument(
        "--commit-delay-ms", type=float, default=0.0, help="AuditLog group-commit delay"
    )
    ap.add_argument("--verify-entries", type=int, default=1_000_000)
    ap.add_argument("--verify-workers", default="1", help="comma list of process counts")
    ap.add_argument("--verify-backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--pg-url", default=PG_URL)
    ap.add_argument("--tmpdir", default=None, help="where the SQLite file goes (e.g. /dev/shm)")
    ap.add_argument("--skip", default="", help="comma list of decide,audited,verify to skip")
    args = ap.parse_args()
    skip = set(args.skip.split(",")) if args.skip else set()
    out: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        }
    }
    if "decide" not in skip:
        out["decide"] = bench_decide(args.decisions)
        print(json.dumps({"decide": out["decide"]}), file=sys.stderr)
    if "audited" not in skip:
        out["audited_requests_postgresql"] = bench_audited(
            args.pg_url,
            args.audit_seconds,
            [int(x) for x in args.threads.split(",")],
            args.commit_delay_ms / 1000.0,
        )
        print(json.dumps({"audited": out["audited_requests_postgresql"]}), file=sys.stderr)
    if "verify" not in skip:
        out["verify"] = bench_verify(
            args.verify_entries,
            args.verify_backend,
            args.pg_url,
            args.tmpdir,
            tuple(int(x) for x in args.verify_workers.split(",")),
        )
    out["machine"]["load_average_at_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
