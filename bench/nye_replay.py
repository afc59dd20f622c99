"""A New Year's Eve night at 10x on PostgreSQL: nothing lost, queue order kept, latencies held.

The night: ``--incidents`` incidents in 24 h, most of them in bursts of ``--burst-per-min`` per
minute around midnight, the rest spread evenly (seeded schedule). A slice of the night
(``--from-min``, ``--minutes``) is replayed at ``--speed`` through the production server path:
three signed sensor reports per incident over HTTP, the policy-gated review queue pushed to
``--consoles`` SSE consoles, review state appended to PostgreSQL (a fresh schema), and a
fraction of incidents confirmed (call on every board + signed webhook to a real receiver).

The server runs in its own process (as ``shotwatch serve`` does; consoles, sensors and the
webhook receiver are other machines in production), so the bench's 50 console clients do not
share the server's interpreter lock. ``--profile`` samples the server's event-loop thread
(200 Hz) and reports where its time goes; CPU seconds of the server and of the bench client
are reported either way.

Checks: every incident reached every console and the database (nothing lost); the queue the
API returns is in priority order; latency percentiles against the issue's targets.

    python3 bench/nye_replay.py --data ../shared/data --minutes 10 --consoles 50

A baseline from another checkout runs under the same harness by pointing PYTHONPATH at its
``src`` (the server process imports ``shotwatch`` from there).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.review_latency import SECRET, SR, SS, Thread, pct
from bench.shot_network import ShotNetwork, TruthShot, match
from shotwatch.api.app import create_app
from shotwatch.api.auth import UserRegistry
from shotwatch.api.build import build_server
from shotwatch.core.clock import ScaledClock, SystemClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import iso_utc
from shotwatch.core.settings import DispatchSettings
from shotwatch.dispatch.boundaries import load_boundaries
from shotwatch.dispatch.channels import (
    SIGNATURE_HEADER,
    HttpSender,
    RetryPolicy,
    WebhookChannel,
    verify_signature,
)
from shotwatch.dispatch.service import SqlFlowStore
from shotwatch.dispatch.tables import ReviewRecordRow
from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore
from shotwatch.sensor.messages import ReportFields
from shotwatch.sensor.signer import SensorSigner
from shotwatch.storage.db import make_engine, migrate, session_factory


def schedule(n: int, burst_per_min: int, seed: int) -> np.ndarray:
    """Minutes after 12:00 (noon before midnight) of each incident, sorted."""
    rng = np.random.default_rng(seed)
    n_burst = min(n, int(0.6 * n))
    burst_minutes = int(np.ceil(n_burst / burst_per_min))
    start = 720 - burst_minutes // 2  # centred on midnight
    burst = start + np.repeat(np.arange(burst_minutes), burst_per_min)[:n_burst]
    burst = burst + rng.random(n_burst)
    rest = rng.uniform(0, 1440, n - n_burst)
    return np.sort(np.concatenate([burst, rest]))


def priority_ok(items: list[dict[str, Any]]) -> bool:
    keys = [
        (
            0 if it["escalated_to"] else 1,
            0 if it["multishot"] else 1,
            -(it["gunfire_probability"] or 0.0),
            it["arrival_s"],
        )
        for it in items
    ]
    return keys == sorted(keys)


#: Where the server's event loop spends its time: a sample counts for the first stage (in
#: this order) whose function is on the loop thread's stack.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("report: signature + checks", ("verify_report",)),
    ("report: evidence + pipeline", ("ingest_verified",)),
    ("classify: gather + fuse (loop part)", ("snippet_jobs", "fuse", "classify_incident")),
    ("queue: flow.ingest + store", ("DispatchFlow.ingest",)),
    ("review: confirm + call", ("DispatchFlow.review", "run_command")),
    ("sse: filter + encode", ("_sse", "_wire_event")),
    ("http: request/response (uvicorn, starlette)", ("uvicorn", "starlette", "h11", "fastapi")),
)


class GcPauses:
    """The interpreter's garbage collections in the server process: how many per generation,
    their total and longest pause (each stops every thread, the event loop too)."""

    def __init__(self) -> None:
        self.n: Counter[int] = Counter()
        self.total_s: Counter[int] = Counter()
        self.max_s: dict[int, float] = {}
        self.long: list[tuple[float, int, float]] = []  # (when, generation, pause) > 100 ms
        self._t0 = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        gen = int(info.get("generation", -1))
        dt = time.perf_counter() - self._t0
        self.n[gen] += 1
        self.total_s[gen] += dt
        self.max_s[gen] = max(self.max_s.get(gen, 0.0), dt)
        if dt > 0.1:
            self.long.append((time.time(), gen, dt))

    def stop(self) -> None:
        if self._cb in gc.callbacks:
            gc.callbacks.remove(self._cb)

    def summary(self) -> dict[str, Any]:
        return {
            str(g): {
                "n": self.n[g],
                "total_s": round(self.total_s[g], 3),
                "max_ms": round(self.max_s[g] * 1000, 1),
            }
            for g in sorted(self.n)
        } | {
            "over_100ms": len(self.long),
            "longest_ms": [round(x[2] * 1000) for x in self.long][-20:],
        }


#: the loop thread's Python stack when the loop is between callbacks (asyncio's selector
#: loop: in `select`; uvloop: in its C `run_forever`, under `Runner.run`)
_LOOP_WAIT_LEAVES = ("selectors.EpollSelector.select", "runners.Runner.run")


def _proc_task(native_id: int, name: str) -> str:
    try:
        return Path(f"/proc/self/task/{native_id}/{name}").read_text()
    except OSError:
        return ""


def thread_cpu_s(native_id: int) -> float | None:
    """CPU seconds (user + system) of one thread of this process, from /proc (Linux)."""
    fields = _proc_task(native_id, "stat").rpartition(")")[2].split()
    if len(fields) < 13:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LoopSampler:
    """Samples one thread's stack at ``hz`` (a poor man's py-spy; no extra dependency).

    A loop thread whose stack shows it between callbacks is either waiting for I/O or,
    having been woken, waiting to take the interpreter lock back from another thread (both
    look the same from Python): the kernel's wait channel tells them apart (a futex is the
    lock), and the thread's CPU time shows how busy it really was."""

    def __init__(self, thread_id: int, hz: float = 200.0) -> None:
        self.tid = thread_id
        self.native_id = threading.get_native_id()  # made on the loop thread
        self.cpu0 = thread_cpu_s(self.native_id)
        self.t0 = time.perf_counter()
        self.period = 1.0 / hz
        self.samples = 0
        self.inclusive: Counter[str] = Counter()
        self.leaf: Counter[str] = Counter()
        self.stage: Counter[str] = Counter()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._t.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._t.join()
        n = max(self.samples, 1)
        cpu1 = thread_cpu_s(self.native_id)
        wall = time.perf_counter() - self.t0
        return {
            "samples": self.samples,
            "loop_thread_cpu_share": (
                round((cpu1 - self.cpu0) / wall, 4)
                if cpu1 is not None and self.cpu0 is not None
                else None
            ),
            "stage_share": {k: round(v / n, 4) for k, v in self.stage.most_common()},
            "inclusive_top": {k: round(v / n, 4) for k, v in self.inclusive.most_common(30)},
            "leaf_top": {k: round(v / n, 4) for k, v in self.leaf.most_common(15)},
        }

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            frame = sys._current_frames().get(self.tid)
            if frame is None:
                continue
            names = []
            f: Any = frame
            while f is not None:
                code = f.f_code
                mod = Path(code.co_filename).stem
                names.append(f"{mod}.{getattr(code, 'co_qualname', code.co_name)}")
                f = f.f_back
            self.samples += 1
            self.leaf[names[0]] += 1
            for name in set(names):
                self.inclusive[name] += 1
            if names[0] in _LOOP_WAIT_LEAVES:
                wchan = _proc_task(self.native_id, "wchan")
                if "futex" in wchan:
                    self.stage["lock: woken, waiting for the interpreter lock"] += 1
                elif wchan.strip() == "0":  # on a CPU (an unreadable wchan counts as a wait)
                    self.stage["loop: running outside Python (C loop, transports)"] += 1
                else:
                    self.stage["idle: waiting for I/O"] += 1
                continue
            stack = "|".join(reversed(names))
            for stage, keys in STAGES:
                if any(k in stack for k in keys):
                    self.stage[stage] += 1
                    break
            else:
                self.stage["other"] += 1


def by_window(
    truth: list[TruthShot],
    first_seen: dict[int, dict[int, float]],
    last_sent: dict[int, float],
    window_s: float = 300.0,
) -> list[dict[str, Any]]:
    """Report -> queue and shots never queued per ``window_s`` of the night (by firing time):
    where in the slice the tail and the misses fall."""
    if not truth:
        return []
    t0 = min(sh.t_fire_s for sh in truth)
    groups: dict[int, list[TruthShot]] = {}
    for sh in truth:
        groups.setdefault(int((sh.t_fire_s - t0) // window_s), []).append(sh)
    out = []
    for k in sorted(groups):
        lat = [
            max(0.0, t - last_sent[sh.n]) * 1000.0
            for sh in groups[k]
            if sh.n in last_sent
            for t in first_seen.get(sh.n, {}).values()
        ]
        out.append(
            {
                "from_s": k * window_s,
                "shots": len(groups[k]),
                "never_in_queue": sum(1 for sh in groups[k] if sh.n not in first_seen),
                "p50_ms": round(pct(lat, 50), 1) if lat else None,
                "p99_ms": round(pct(lat, 99), 1) if lat else None,
                "max_ms": round(max(lat), 1) if lat else None,
            }
        )
    return out


def slowest(
    truth: list[TruthShot],
    first_seen: dict[int, dict[int, float]],
    last_sent: dict[int, float],
    ids_of: dict[int, list[str]],
    *,
    first_info: dict[int, dict[str, Any]],
    k: int = 25,
) -> list[dict[str, Any]]:
    """The shots that took longest to reach a console, with their neighbours in space and
    time (evaluation only: what the slow ones have in common)."""
    rows = []
    fire = [o.t_fire_s for o in truth]  # truth is in firing order
    for sh in truth:
        seen = first_seen.get(sh.n)
        if not seen or sh.n not in last_sent:
            continue
        lat = (min(seen.values()) - last_sent[sh.n]) * 1000.0
        lo = bisect.bisect_left(fire, sh.t_fire_s - 60.0)
        hi = bisect.bisect_right(fire, sh.t_fire_s + 60.0)
        near = min(
            (
                (math.hypot(o.x_m - sh.x_m, o.y_m - sh.y_m), o.t_fire_s - sh.t_fire_s)
                for o in truth[lo:hi]
                if o.n != sh.n
            ),
            default=(float("inf"), 0.0),
        )
        rows.append(
            {
                "n": sh.n,
                "first_console_ms": round(lat, 1),
                "reports": len(sh.reports),
                "span_s": round(sh.last_arrival_s - min(r.arrival_s for r in sh.reports), 3),
                "nearest_m": round(near[0], 1),
                "nearest_dt_s": round(near[1], 2),
                "incidents": ids_of.get(sh.n, []),
                "first_seen_as": first_info.get(sh.n),
            }
        )
    rows.sort(key=lambda r: -r["first_console_ms"])
    return rows[:k]


def real_pipeline(cfg: dict[str, Any], frame: LocalFrame, sessions: Any) -> tuple[Any, Any, Any]:
    """The production pipeline as ``shotwatch serve`` runs it (association, location,
    incidents, preliminary versions, results stored), on a clock that runs at the replay's
    speed, with the network's sensors registered; and its ticker."""
    from shotwatch.api.live import PipelineConsumer, ticker
    from shotwatch.core.clock import ScaledClock
    from shotwatch.core.model import Sensor
    from shotwatch.core.settings import Settings
    from shotwatch.pipeline import LIVE_TICK_EVERY_S, Pipeline, StoreSink

    clock = ScaledClock(cfg["data_origin_s"], cfg["speed"], cfg["wall_origin_s"])
    settings = Settings()
    sensors = [Sensor(serial, x, y, z) for serial, x, y, z in cfg["sensors"]]
    consumer = PipelineConsumer(
        lambda sink: Pipeline(
            settings, clock, sink, frame=frame, sensors=sensors, tick_every_s=LIVE_TICK_EVERY_S
        ),
        StoreSink(sessions, background=True),
        preliminary=True,
    )

    def tick(srv: Any) -> Any:
        # ticks in wall time; the clock turns them into replay time
        return ticker(consumer, srv.accept, period_s=0.25 / cfg["speed"])

    return consumer, clock, tick


class RawPoster:
    """One kept-alive HTTP/1.1 connection posting JSON bodies: a few syscalls per report, so
    the bench (standing in for hundreds of sensors on other machines) costs the shared CPU
    little next to the server it measures."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        self.reader, self.writer = reader, writer
        self.host, self.port = host, port
        self.reconnects = 0

    @classmethod
    async def open(cls, host: str, port: int) -> RawPoster:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host, port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Post once; a connection the server closed while idle (keep-alive timeout, as in
        the quiet hours of the night) is opened again and the report sent on it, as a sensor
        would."""
        if not self.reader.at_eof() and not self.writer.is_closing():
            try:
                return await self._post(path, body)
            except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
                pass
        self.writer.close()
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.reconnects += 1
        return await self._post(path, body)

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def serve_main(cfg: dict[str, Any], stop: Any) -> None:
    """The server process: the production app on uvicorn, with this night's users, sensors
    and webhook receiver; writes its CPU time (and profile) to ``cfg['out']`` on exit."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from bench.review_latency import Triples as _Triples

    sessions = session_factory(make_engine(cfg["url"]))
    nypd = load_boundaries(Path(cfg["data"]) / "boundaries" / "nypd-precincts.geojson")
    p = nypd.boundary("75").geometry.representative_point()
    frame = LocalFrame(p.y, p.x)
    clock = SystemClock()
    users = UserRegistry.from_dicts(
        [
            {
                "token": f"tok-{i}",
                "user_id": f"det{i}",
                "agency": "NYPD",
                "role": "investigator",
                "rank": "detective",
                "command": cfg["console_commands"][i] if cfg.get("console_commands") else "75",
                "access": [SS],
                "trained": [SS],
            }
            for i in range(cfg["consoles"])
        ]
    )
    consumer: Any = _Triples(frame)
    background: list[Any] = []
    if cfg["pipeline"] == "real":
        consumer, clock, tick = real_pipeline(cfg, frame, sessions)
        background.append(tick)
    store: Any = SqlFlowStore(sessions)
    store_name = "each"
    if cfg["store"] == "batched":
        try:
            from shotwatch.dispatch.service import BatchedSqlFlowStore

            store, store_name = BatchedSqlFlowStore(sessions), "batched"
        except ImportError:  # an older checkout measured as the baseline
            store_name = "each (batched not available)"

    evidence_kw: dict[str, Any] = {}
    try:  # the snippets stored as `shotwatch serve` stores them (ADR 0114)
        from shotwatch.api.evidence_store import SqlEvidenceStore

        if cfg["evidence"]:
            root = Path(tempfile.mkdtemp(prefix="nye-evidence-"))
            evidence_kw["evidence_store"] = SqlEvidenceStore(sessions, root)
    except ImportError:  # an older checkout measured as the baseline
        pass

    async def main() -> None:
        chan_client = httpx.AsyncClient()
        channel = WebhookChannel(
            HttpSender(
                f"http://127.0.0.1:{cfg['port'] + 1}/hook",
                SECRET,
                clock,
                chan_client,
                RetryPolicy(3, 0.05),
            )
        )
        pub = {s: Ed25519PublicKey.from_public_bytes(b) for s, b in cfg["keys"].items()}
        srv = build_server(
            DispatchSettings(),
            clock=clock,
            boundaries=nypd,
            users=users,
            channels=[channel],
            verifier=Ingest(MemoryIngestStore(pub), IngestLimits(), clock),
            consumer=consumer,
            frame=frame,
            store=store,
            **evidence_kw,
        )
        for make in background:
            srv.background.append(lambda make=make: make(srv))
        srv.classify = cfg["classify"]  # as `shotwatch serve` runs: score from the audio
        if cfg["classify"] and cfg["scoring_workers"] != 1:
            from shotwatch.api.classify import ScoringQueue

            srv.scoring = ScoringQueue(srv.flow.ingest, workers=cfg["scoring_workers"])
        uv = uvicorn.Server(
            uvicorn.Config(
                create_app(srv),
                host="127.0.0.1",
                port=cfg["port"],
                log_level="error",
                timeout_graceful_shutdown=5,
            )
        )
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=lambda: (
                stop.wait(),
                loop.call_soon_threadsafe(setattr, uv, "should_exit", True),
            ),
            daemon=True,
        ).start()
        await uv.serve()
        await chan_client.aclose()
        close = getattr(store, "close", None)
        if close is not None:
            close()
        ev = evidence_kw.get("evidence_store")
        if ev is not None:
            ev.close()
            shutil.rmtree(ev.root, ignore_errors=True)  # ~2 GB for the busiest hour

    sampler = LoopSampler(threading.get_ident()) if cfg["profile"] else None
    if sampler is not None:
        sampler.start()
    pauses = GcPauses()
    cpu0 = time.process_time()
    # the event loop `shotwatch serve` runs (uvicorn's loop "auto": uvloop where installed)
    loop_factory = uvicorn.Config(create_app, loop="auto").get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    pauses.stop()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {
        "cpu_s": time.process_time() - cpu0,
        "workers_cpu_s": kids.ru_utime + kids.ru_stime,  # the scoring process(es)
        "store": store_name,
    }
    ev = evidence_kw.get("evidence_store")
    if ev is not None:
        out["evidence_audio"] = {"stored": ev.stored, "errors": ev.errors[:5]}
    out["gc_pauses"] = pauses.summary()
    if sampler is not None:
        out["profile"] = sampler.stop()
    Path(cfg["out"]).write_text(json.dumps(out))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sched = schedule(args.incidents, args.burst_per_min, args.seed)
    sl = sched[(sched >= args.from_min) & (sched < args.from_min + args.minutes)]
    rel_s = (sl - args.from_min) * 60.0 / args.speed
    schema = f"nye_{uuid.uuid4().hex[:8]}"
    with make_engine(args.pg_url).begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{args.pg_url}?options=-csearch_path%3D{schema}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    real = args.pipeline == "real"
    network = ShotNetwork(side_m=args.network_side_m, seed=args.seed) if real else None
    serials = network.serials if network is not None else [f"SN-{i}" for i in range(3)]
    keys = {s: Ed25519PrivateKey.generate() for s in serials}
    received: dict[str, float] = {}
    # replay time: the night's clock reads data_origin at the wall origin and runs `speed` x
    data_origin = float(int(time.time()))
    truth: list[TruthShot] = []
    prepared: list[tuple[float, int, str, bytes]] = []
    signers = {s: SensorSigner(s, k, Path(tempfile.mkdtemp()) / s) for s, k in keys.items()}
    tt = np.arange(2 * SR) / SR
    snippet = (3000 * np.exp(-((tt - 1.0) ** 2) / 1e-4) * np.sin(2e3 * tt)).astype(np.int16)
    precinct_of: dict[int, str] = {}
    console_commands: list[str] = []
    if network is not None:
        # shots only where a precinct answers (not in the bay); consoles spread over the
        # precincts the shots fall in, each seeing its own command's incidents (policy)
        nypd = load_boundaries(Path(args.data) / "boundaries" / "nypd-precincts.geojson")
        rp = nypd.boundary("75").geometry.representative_point()
        frame = LocalFrame(rp.y, rp.x)

        def precinct(x: float, y: float) -> str | None:
            lat, lon, _ = frame.to_geo(x, y, 0.0)
            return nypd.route(lat, lon).unit_id

        truth = [
            network.shot(
                n,
                data_origin + float(minute - args.from_min) * 60.0,
                accept=lambda x, y: precinct(x, y) is not None,
            )
            for n, minute in enumerate(sl, start=1)
        ]
        precinct_of = {sh.n: str(precinct(sh.x_m, sh.y_m)) for sh in truth}
        units = sorted(set(precinct_of.values()))
        console_commands = [units[i % len(units)] for i in range(args.consoles)]
        # The sensors are other machines: their signed reports are made before the night
        # starts (in sending order, so each sensor's sequence numbers grow), and the bench
        # only posts them on time. A report leaves when its 1 s of post-roll is recorded.
        for t_send, n, k in sorted(
            (r.arrival_s + 1.0, shot.n, k) for shot in truth for k, r in enumerate(shot.reports)
        ):
            shot = truth[n - 1]
            r = shot.reports[k]
            f = ReportFields(
                iso_utc(r.arrival_s),
                0.0004,
                r.x_m,
                r.y_m,
                r.z_m,
                None,
                None,
                None,
                20.0,
                network.level_dbfs(r, shot),
                0.9,
            )
            body = signers[r.serial].report(f, snippet, SR, r.arrival_s - 1.0)[1]
            prepared.append((t_send, n, r.serial, body))
    wall_origin = time.time() + args.startup_s
    hook_now = ScaledClock(data_origin, args.speed, wall_origin).now if real else SystemClock().now

    async def hook(request: Request) -> Response:
        body = await request.body()
        # the server signs on its own clock: in a replay of the real pipeline, replay time
        verify_signature(SECRET, request.headers.get(SIGNATURE_HEADER), body, now_s=hook_now())
        received[json.loads(body)["incident_id"]] = time.perf_counter()
        return Response(status_code=204)

    receiver = Thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), args.port + 1)
    receiver.start()
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    profile_path = Path(tempfile.mkdtemp(prefix="nye-")) / "server.json"
    cfg = {
        "url": url,
        "data": args.data,
        "consoles": args.consoles,
        "keys": {
            s: k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for s, k in keys.items()
        },
        "port": args.port,
        "classify": not args.no_classify,
        "scoring_workers": args.scoring_workers,
        "store": args.store,
        "profile": args.profile,
        "evidence": not args.no_evidence,
        "out": str(profile_path),
        "pipeline": args.pipeline,
        "console_commands": console_commands,
        "speed": args.speed,
        "data_origin_s": data_origin,
        "wall_origin_s": wall_origin,
        "sensors": []
        if network is None
        else [
            (serial, float(x), float(y), float(z))
            for serial, x, y, z in zip(
                network.serials, network.x, network.y, network.z, strict=True
            )
        ],
    }
    proc = ctx.Process(target=serve_main, args=(cfg, stop))
    proc.start()
    if args.pid_file:  # for an outside profiler (py-spy) to attach to the server
        Path(args.pid_file).write_text(f"{proc.pid}\n")
    base = f"http://127.0.0.1:{args.port}"
    async with httpx.AsyncClient() as probe:
        for _ in range(600):
            try:
                if (await probe.get(f"{base}/docs")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    cpu0 = time.process_time()
    queue_seen: dict[str, list[float]] = {}
    board_seen: dict[str, list[float]] = {}
    connected = 0
    ready = asyncio.Event()
    # real pipeline: server incident id -> truth shot, and each truth shot's first sight on
    # each console (any version of any incident about it)
    srv2truth: dict[str, int | None] = {}
    first_seen: dict[int, dict[int, float]] = {}
    ids_of: dict[int, list[str]] = {}
    first_info: dict[int, dict[str, Any]] = {}

    fire_times = [sh.t_fire_s for sh in truth]
    matched: dict[tuple[str, float, float, float], int | None] = {}

    def match_version(d: dict[str, Any]) -> int | None:
        """The truth shot one shown version is about (cached: 50 consoles see each version);
        every version is matched, since a forming incident's first place can be off."""
        key = (d["incident_id"], float(d["x_m"]), float(d["y_m"]), float(d["start_s"]))
        if key not in matched:
            start = key[3]
            lo = bisect.bisect_left(fire_times, start - 5.0)
            hi = bisect.bisect_right(fire_times, start + 5.0)
            m = match(truth[lo:hi], key[1], key[2], start)
            matched[key] = None if m is None else m.n
        return matched[key]

    def seen_real(i: int, t: float, d: dict[str, Any]) -> None:
        iid = d["incident_id"]
        n = match_version(d)
        if iid not in srv2truth or n is not None:
            srv2truth[iid] = n
        if n is not None:
            if iid not in ids_of.setdefault(n, []):
                ids_of[n].append(iid)
            if n not in first_seen:
                first_info[n] = {"forming": d.get("forming"), "version": d.get("version")}
            first_seen.setdefault(n, {}).setdefault(i, t)

    async def console(i: int) -> None:
        """One open console: a bare HTTP/1.0 stream (no chunking) read line by line, so 50 of
        them cost the bench little CPU (browsers on other machines in production)."""
        nonlocal connected
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port, limit=1 << 20)
        writer.write(
            (
                "GET /api/v1/events HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer tok-{i}\r\nX-Purpose: emergency_response\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        event = ""
        try:
            while raw := await reader.readline():
                line = raw.decode().rstrip("\r\n")
                if line.startswith(": connected"):
                    connected += 1
                    if connected == args.consoles:
                        ready.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    t = time.perf_counter()
                    d = json.loads(line[6:])
                    if event == "queue" and d.get("state") == "open" and d["version"] == 1:
                        queue_seen.setdefault(d["incident_id"], []).append(t)
                    elif event == "board" and d.get("event") == "call":
                        board_seen.setdefault(d["call"]["incident_id"], []).append(t)
                    if real and event == "queue" and d.get("state") == "open":
                        seen_real(i, t, d)
        finally:
            writer.close()

    tasks = [asyncio.create_task(console(i)) for i in range(args.consoles)]
    await asyncio.wait_for(ready.wait(), 60)
    pos = [(0.0, 150.0), (130.0, -80.0), (-130.0, -80.0)]
    sent_at: dict[str, float] = {}
    confirm_at: dict[str, float] = {}
    to_confirm: list[str] = []
    h0 = {"Authorization": "Bearer tok-0", "X-Purpose": "emergency_response"}
    late_s: list[float] = []
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    last_sent: dict[int, float] = {}
    confirm_failed: list[str] = []
    reports_sent = 0

    async def send_real(c: httpx.AsyncClient) -> None:
        """Every sensor report of the slice, each sent when its sensor has recorded the 1 s
        after the onset (replay time, shown on the wall clock at `speed` x); a sensor's own
        reports go in order. Confirms follow as a reviewer sees incidents."""
        nonlocal reports_sent
        assert network is not None
        locks = {sn: asyncio.Lock() for sn in serials}
        pending: list[asyncio.Task[None]] = []
        confirmable = [shot.n for shot in truth if shot.n % args.confirm_every == 0]

        pool: asyncio.Queue[RawPoster] = asyncio.Queue()
        for _ in range(8):
            pool.put_nowait(await RawPoster.open("127.0.0.1", args.port))

        async def post(n: int, serial: str, body: bytes, due: float) -> None:
            nonlocal reports_sent
            async with locks[serial]:
                late_s.append(max(0.0, time.time() - due))
                last_sent[n] = max(last_sent.get(n, 0.0), time.perf_counter())
                conn = await pool.get()
                try:
                    status, text_ = await conn.post("/api/v1/reports", body)
                finally:
                    pool.put_nowait(conn)
                if status != 200:
                    raise RuntimeError(f"report refused: {status} {text_[:200]!r}")
                reports_sent += 1

        async def confirm_seen() -> None:
            # a reviewer confirms each chosen incident once its console shows it
            for n in [n for n in confirmable if ids_of.get(n)]:
                confirmable.remove(n)
                iid = ids_of[n][0]
                reviewer = console_commands.index(precinct_of[n])  # a console of its command
                confirm_at[iid] = time.perf_counter()
                r = await c.post(
                    f"/api/v1/incidents/{iid}/commands/confirm",
                    headers={**h0, "Authorization": f"Bearer tok-{reviewer}"},
                    json={"reason": "nye confirm"},
                )
                if r.status_code != 200 or r.json().get("outcome") != "OK":
                    confirm_at.pop(iid)
                    confirm_failed.append(f"{iid}: {r.status_code} {r.text[:200]}")

        for t_send, n, serial, body in prepared:
            due = wall_origin + (t_send - data_origin) / args.speed
            await asyncio.sleep(max(0.0, due - time.time()))
            pending.append(asyncio.create_task(post(n, serial, body, due)))
            await confirm_seen()
        await asyncio.gather(*pending)
        while not pool.empty():
            pool.get_nowait().close()
        wait_until = time.time() + 30
        while confirmable and time.time() < wait_until:
            await confirm_seen()
            await asyncio.sleep(0.02)
        sent_at.update({str(n): t for n, t in last_sent.items()})

    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
        t_start = time.perf_counter()

        if real:
            await send_real(c)
        else:

            async def one(n: int, due: float) -> None:
                now = time.time()
                bodies = []
                for k, sg in enumerate(signers.values()):
                    t_k = now + 0.01 * k
                    f = ReportFields(
                        iso_utc(t_k),
                        0.0004,
                        pos[k][0],
                        pos[k][1],
                        5.0,
                        None,
                        None,
                        None,
                        20.0,
                        -10.0,
                        0.9,
                    )
                    bodies.append(sg.report(f, snippet, SR, t_k - 1.0)[1])
                # the three sensors send at once (each sensor's own reports stay in order: the
                # next incident waits for these); the clock starts before the first is sent, so
                # it covers "last report received" whichever arrives last
                iid = f"b-inc-{n}"
                sent_at[iid] = time.perf_counter()
                for r in await asyncio.gather(
                    *(c.post("/api/v1/reports", content=b) for b in bodies)
                ):
                    r.raise_for_status()
                if n % args.confirm_every == 0:
                    to_confirm.append(iid)

            pending: list[asyncio.Task[None]] = []
            lock = asyncio.Lock()  # sensors' sequence numbers must arrive in order

            async def ordered(n: int, due: float) -> None:
                async with lock:
                    late_s.append(max(0.0, time.perf_counter() - t_start - due))
                    await one(n, due)

            for n, due in enumerate(rel_s, start=1):
                await asyncio.sleep(max(0.0, t_start + due - time.perf_counter()))
                pending.append(asyncio.create_task(ordered(n, float(due))))
                while to_confirm and queue_seen.get(to_confirm[0]):  # a reviewer sees it first
                    iid = to_confirm.pop(0)
                    confirm_at[iid] = time.perf_counter()
                    r = await c.post(
                        f"/api/v1/incidents/{iid}/commands/confirm",
                        headers=h0,
                        json={"reason": "nye confirm"},
                    )
                    assert r.json()["outcome"] == "OK", r.text
            await asyncio.gather(*pending)
            for iid in to_confirm:
                while not queue_seen.get(iid):
                    await asyncio.sleep(0.01)
                confirm_at[iid] = time.perf_counter()
                await c.post(
                    f"/api/v1/incidents/{iid}/commands/confirm",
                    headers=h0,
                    json={"reason": "nye confirm"},
                )
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and (
            (
                sum(len(v) for v in first_seen.values())
                < sum(Counter(console_commands)[precinct_of[sh.n]] for sh in truth)
                if real
                else sum(len(v) for v in queue_seen.values()) < len(sent_at) * args.consoles
            )
            or any(i not in received for i in confirm_at)
        ):
            await asyncio.sleep(0.05)
        queue = (await c.get("/api/v1/queue", headers=h0)).json()
    elapsed = time.perf_counter() - t_start
    client_cpu_s = time.process_time() - cpu0
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stop.set()
    await asyncio.to_thread(proc.join, 60)
    receiver.stop()
    server_info = json.loads(profile_path.read_text()) if profile_path.exists() else {}
    with sessions() as s:
        stored = s.scalar(select(func.count()).select_from(ReviewRecordRow))
    with make_engine(args.pg_url).begin() as c:
        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    r2q = [t - sent_at[i] for i, ts in queue_seen.items() if i in sent_at for t in ts]
    missing_console = sum(args.consoles - len(queue_seen.get(i, [])) for i in sent_at)
    missing_console_queued: int | None = None  # the real pipeline's shots only
    not_stored = len(sent_at) - int(stored or 0)
    association: dict[str, Any] | None = None
    if real:
        # last report sent -> the incident about that shot in the queue on each console; an
        # incident already there (a provisional shot from the first reports) counts 0
        signed = [
            t - last_sent[n]
            for n, per in first_seen.items()
            if n in last_sent
            for t in per.values()
        ]
        r2q = [max(0.0, d) for d in signed]
        # each shot should reach every console of its precinct's command (a console of
        # another command that also saw it, its incident placed across a boundary, does
        # not make up for one of its own that did not)
        consoles_of: dict[str, list[int]] = {}
        for i_c, cmd in enumerate(console_commands):
            consoles_of.setdefault(cmd, []).append(i_c)

        def unseen(sh: TruthShot) -> int:
            seen = first_seen.get(sh.n, {})
            return sum(1 for i_c in consoles_of.get(precinct_of[sh.n], []) if i_c not in seen)

        missing_console = sum(unseen(sh) for sh in truth)
        # of those, the deliveries of shots that did reach some console (the server's own
        # losses); the rest belong to shots association never formed into an incident
        missing_console_queued = sum(unseen(sh) for sh in truth if sh.n in first_seen)
        not_stored = len(srv2truth) - int(stored or 0)
        association = {
            "truth_incidents": len(truth),
            "reports_sent": reports_sent,
            "reports_per_incident_mean": reports_sent / max(len(truth), 1),
            "truth_incidents_never_in_queue": sum(1 for sh in truth if sh.n not in first_seen),
            "truth_incidents_split": sum(1 for ids in ids_of.values() if len(ids) > 1),
            "server_incidents": len(srv2truth),
            "server_incidents_matching_no_shot": sum(1 for v in srv2truth.values() if v is None),
            "in_queue_before_last_report_share": (
                sum(1 for d in signed if d <= 0) / len(signed) if signed else None
            ),
            "confirms_refused": confirm_failed[:5],
            "confirms_refused_n": len(confirm_failed),
            "network_sensors": len(serials),
            "precincts": len(set(console_commands)),
            "consoles_per_incident_mean": (
                sum(Counter(console_commands)[precinct_of[sh.n]] for sh in truth)
                / max(len(truth), 1)
            ),
            "by_5_night_min": by_window(truth, first_seen, last_sent),
            "slowest": slowest(truth, first_seen, last_sent, ids_of, first_info=first_info),
        }
    c2a = [
        max(*board_seen.get(i, [float("inf")]), received.get(i, float("inf"))) - t0
        for i, t0 in confirm_at.items()
    ]
    ms = 1000.0

    def board_expected(iid: str) -> int:
        """Consoles whose board shows this call: all of them, or (real pipeline) those of the
        incident's command."""
        n = srv2truth.get(iid)
        return args.consoles if not real or n is None else Counter(console_commands)[precinct_of[n]]

    return {
        "benchmark": "nye_replay",
        "backend": "postgresql",
        "night": {"incidents": args.incidents, "burst_per_min": args.burst_per_min},
        "slice": {
            "from_min_after_noon": args.from_min,
            "minutes": args.minutes,
            "speed": args.speed,
            "incidents": len(sent_at),
            "wall_s": elapsed,
            "sustained_rate_per_s": len(sent_at) / max(elapsed, 1e-9),
            "burst_rate_per_s": args.burst_per_min * args.speed / 60.0,
            "sender_late_p99_ms": pct(late_s, 99) * ms,
        },
        "consoles": args.consoles,
        "classify": not args.no_classify,
        "scoring_workers": args.scoring_workers,
        "store": server_info.get("store"),
        "load_avg_1_5_15": list(os.getloadavg()),
        "cpu_s": {
            "server": server_info.get("cpu_s"),
            "server_scoring_workers": server_info.get("workers_cpu_s"),
            "bench_client": client_cpu_s,
        },
        "lost": {
            "not_stored": not_stored,
            "console_deliveries_missing": missing_console,
            "console_deliveries_missing_of_queued_shots": missing_console_queued,
            "board_deliveries_missing": sum(
                board_expected(i) - len(board_seen.get(i, [])) for i in confirm_at
            ),
            "webhooks_missing": sum(1 for i in confirm_at if i not in received),
            # every report carries a snippet: each must be stored once (None: not stored
            # by the server measured, an older checkout)
            "audio_not_stored": (
                reports_sent - server_info["evidence_audio"]["stored"]
                if "evidence_audio" in server_info
                else None
            ),
        },
        "pipeline": args.pipeline,
        "association": association,
        "queue_in_priority_order": priority_ok(queue),
        "queue_length": len(queue),
        "report_to_queue_ms": {
            "n": len(r2q),
            "p50": pct(r2q, 50) * ms,
            "p99": pct(r2q, 99) * ms,
            "target_p50": 300,
            "target_p99": 1000,
        },
        "confirm_to_board_and_webhook_ms": {
            "n": len(c2a),
            "p50": pct(c2a, 50) * ms,
            "p99": pct(c2a, 99) * ms,
            "target_p99": 500,
        },
        "server_profile": server_info.get("profile"),
        "server_gc_pauses": server_info.get("gc_pauses"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument(
        "--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/shotwatch_test"
    )
    ap.add_argument("--incidents", type=int, default=10_000)
    ap.add_argument("--burst-per-min", type=int, default=100)
    ap.add_argument("--from-min", type=float, default=700.0, help="slice start (min after noon)")
    ap.add_argument("--minutes", type=float, default=10.0, help="slice length (night minutes)")
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--consoles", type=int, default=50)
    ap.add_argument("--confirm-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=18490)
    ap.add_argument("--no-classify", action="store_true", help="skip scoring incidents")
    ap.add_argument(
        "--store",
        choices=["batched", "each"],
        default="batched",
        help="review state: group-committed on a writer thread, or one commit per change",
    )
    ap.add_argument("--profile", action="store_true", help="sample the server's event loop")
    ap.add_argument(
        "--no-evidence",
        action="store_true",
        help="keep the sensors' snippets in memory only (the baseline for the evidence store)",
    )
    ap.add_argument("--pid-file", default=None, help="write the server process id here")
    ap.add_argument(
        "--scoring-workers", type=int, default=1, help="scoring processes (serve uses 1)"
    )
    ap.add_argument(
        "--pipeline",
        choices=["real", "triples"],
        default="real",
        help="real: a simulated sensor network's reports through the production pipeline "
        "(association, location, incidents); triples: one incident per three reports",
    )
    ap.add_argument("--network-side-m", type=float, default=12_000.0, help="real: network size")
    ap.add_argument(
        "--startup-s", type=float, default=20.0, help="wall seconds before the night begins"
    )
    ap.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = ap.parse_args()
    try:
        result = asyncio.run(run(args))
    finally:  # a failed run must not leave the server process behind
        for child in mp.active_children():
            child.terminate()
    json.dump(result, sys.stdout, indent=2)
    print()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
