"""``shotwatch serve``: the web application (sensor reports, review console, dispatch board)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shotwatch.cli.common import add_config_option, add_db_option


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the web application: sensor report ingest, review console, dispatch board",
        description="Serve the API (OpenAPI at /docs), the review console (/console), the "
        "dispatch board (/board) and the officer view (/officer).",
    )
    add_config_option(p)
    add_db_option(p)
    p.add_argument("--host", default=None, help="listen address (default: dispatch.host)")
    p.add_argument("--port", type=int, default=None, help="listen port (default: dispatch.port)")
    p.add_argument("--boundaries", default=None, help="police boundary GeoJSON file")
    p.add_argument("--mode", choices=["nypd", "sfdem"], default=None, help="deployment flow")
    p.add_argument(
        "--users",
        default=None,
        help="service tokens TOML file ([[user]] tables mapping hashed tokens to identity "
        "accounts, e.g. for a CAD integration); people sign in with password + TOTP",
    )
    p.add_argument(
        "--mqtt",
        default=None,
        metavar="HOST:PORT",
        help="also take sensor reports from this MQTT broker (persistent QoS 1 session)",
    )
    p.add_argument("--check", action="store_true", help="build the app, print its routes and exit")
    p.add_argument(
        "--demo",
        action="store_true",
        help="the whole system live: a simulated network over a real district sends signed "
        "reports to this server; demo users are printed",
    )
    p.add_argument("--open", action="store_true", help="open the console in a web browser")
    p.add_argument(
        "--live-for",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --demo: stop after this long (default: run until Ctrl-C)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from shotwatch.api.app import create_app
    from shotwatch.api.build import build_server
    from shotwatch.core.clock import SystemClock
    from shotwatch.core.errors import InputError
    from shotwatch.core.settings import load_settings
    from shotwatch.sensor.ingest import Ingest, IngestLimits, SqlIngestStore
    from shotwatch.storage.db import make_engine, migrate, resolve_url, session_factory

    settings = load_settings(args.config)
    if args.demo:
        return run_demo_server(args, settings)
    d = settings.dispatch
    overrides = {
        k: v
        for k, v in {
            "boundaries_file": args.boundaries,
            "mode": args.mode,
            "users_file": args.users,
            "host": args.host,
            "port": args.port,
        }.items()
        if v is not None
    }
    d = d.model_copy(update=overrides)
    clock = SystemClock()
    url = resolve_url(args.db or settings.storage.url)
    migrate(url)
    db = make_engine(url)
    sessions = session_factory(db)
    from shotwatch.audit.log import AuditLog
    from shotwatch.policy.engine import PolicyEngine, default_engine
    from shotwatch.policy.identity import IdentityService
    from shotwatch.policy.schema import load_policies

    pst = settings.policy
    engine = PolicyEngine(load_policies(pst.policy_dir)) if pst.policy_dir else default_engine()
    audit_log = AuditLog(db, clock, checkpoint_every=pst.audit_checkpoint_every)
    identity = IdentityService(db, clock, pst, engine.policies, audit=audit_log)
    registry = SqlIngestStore(sessions)
    verifier = Ingest(registry, IngestLimits.from_settings(settings.sensor), clock)
    from shotwatch.api.evidence_store import SqlEvidenceStore
    from shotwatch.api.live import PipelineConsumer, ticker
    from shotwatch.core.geo import LocalFrame
    from shotwatch.dispatch.service import BatchedSqlFlowStore, resend, restore_flow
    from shotwatch.pipeline import LIVE_TICK_EVERY_S, Pipeline, StoreSink

    frame = None
    if d.origin_lat_deg is not None and d.origin_lon_deg is not None:
        frame = LocalFrame(d.origin_lat_deg, d.origin_lon_deg)
    # the registry's surveyed sensors: which ones near a shot stayed silent is evidence
    sensors = registry.sensors(frame)
    consumer = PipelineConsumer(
        lambda sink: Pipeline(
            settings, clock, sink, frame=frame, sensors=sensors, tick_every_s=LIVE_TICK_EVERY_S
        ),
        StoreSink(sessions, background=True),  # the loop never waits for the database
        preliminary=True,  # open incidents reach the queue within the shot wait (ADR 0106)
    )
    evidence_dir = Path(settings.storage.evidence_dir)
    server = build_server(
        d,
        clock=clock,
        verifier=verifier,
        store=BatchedSqlFlowStore(sessions),
        consumer=consumer,
        frame=frame,
        engine=engine,
        identity=identity,
        audit_log=audit_log,
        # snippets kept past memory and restarts (ADR 0114)
        evidence_store=SqlEvidenceStore(sessions, evidence_dir),
    )

    async def _tick() -> None:
        await ticker(consumer, server.accept)

    server.background.append(_tick)
    server.classify = True
    _purge_sensor_audio_periodically(server, sessions, clock, evidence_dir)

    from shotwatch.api.live import resume
    from shotwatch.pipeline import incident_close_delay_s
    from shotwatch.storage.service import load_pulses

    lookback_s = incident_close_delay_s(settings) + 5.0
    with sessions() as s:
        recent = load_pulses(session=s, start_s=clock.now() - lookback_s)
    replayed = resume(consumer, recent, lambda iid: iid in server.flow.book.records, server.accept)
    print(f"shotwatch serve: resumed the pipeline from {replayed} recent pulses", file=sys.stderr)
    if args.mqtt:
        mhost, _, mport = args.mqtt.rpartition(":")
        if not mhost or not mport.isdigit():
            raise InputError("--mqtt", "address", f"expected HOST:PORT, got {args.mqtt!r}")

        async def _mqtt() -> None:
            import asyncio

            from shotwatch.api.mqtt import mqtt_bridge

            loop = asyncio.get_running_loop()
            sub = mqtt_bridge(server, verifier, loop, mhost, int(mport))
            await loop.run_in_executor(None, sub.start)
            try:
                await asyncio.Event().wait()  # until the server shuts down (cancelled)
            finally:
                sub.stop()

        server.background.append(_mqtt)
    undelivered = restore_flow(server.flow, sessions)
    print(
        f"shotwatch serve: restored {len(server.flow.book.records)} incidents, "
        f"{len(server.flow.calls)} calls; {len(undelivered)} to re-send",
        file=sys.stderr,
    )

    async def _resend() -> None:
        await resend(server.flow, undelivered)

    server.startup.append(_resend)
    app = create_app(server)
    if args.check:
        for r in app.routes:
            methods = ",".join(sorted(getattr(r, "methods", None) or []))
            print(f"{methods:10} {getattr(r, 'path', '')}")
        return 0
    import uvicorn

    print(f"shotwatch serve: http://{d.host}:{d.port}/console (mode {d.mode})", file=sys.stderr)
    uvicorn.run(app, host=d.host, port=d.port, log_level="info")
    return 0


def run_demo_server(args: argparse.Namespace, settings: object) -> int:
    import os
    import tempfile
    import threading
    import webbrowser
    from pathlib import Path

    import uvicorn
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shotwatch.api.app import create_app
    from shotwatch.api.build import build_server
    from shotwatch.api.demo_live import DEMO_ORIGIN, demo_boundaries, demo_users, feed, plan
    from shotwatch.api.evidence_store import SqlEvidenceStore
    from shotwatch.api.live import PipelineConsumer, ticker
    from shotwatch.core.clock import SystemClock
    from shotwatch.core.errors import InputError
    from shotwatch.core.geo import LocalFrame
    from shotwatch.core.settings import Settings
    from shotwatch.dispatch.boundaries import load_boundaries
    from shotwatch.dispatch.channels import FakeChannel
    from shotwatch.dispatch.service import BatchedSqlFlowStore
    from shotwatch.pipeline import LIVE_TICK_EVERY_S, Pipeline, StoreSink
    from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore
    from shotwatch.storage.db import make_engine, migrate, session_factory

    assert isinstance(settings, Settings)
    data = Path(os.environ.get("SHOTWATCH_DATA", "../shared/data"))
    bfile = (
        Path(args.boundaries)
        if args.boundaries
        else (data / "boundaries" / "chicago-police-districts.geojson")
    )
    if bfile.exists():
        boundaries = load_boundaries(bfile)
    elif args.boundaries:
        raise InputError(str(bfile), "boundaries", "not found")
    else:
        print(
            f"shotwatch serve --demo: {bfile} not found; routing to four made-up demo "
            "districts around the scenario (pass --boundaries FILE for a real city's)",
            file=sys.stderr,
        )
        boundaries = demo_boundaries(*DEMO_ORIGIN)
    command = boundaries.route(*DEMO_ORIGIN).unit_id or ""
    tmp = Path(tempfile.mkdtemp(prefix="shotwatch-demo-"))
    url = args.db or f"sqlite:///{tmp / 'demo.db'}"
    migrate(url)
    db = make_engine(url)
    sessions = session_factory(db)
    mode = args.mode or "nypd"
    from shotwatch.audit.log import AuditLog
    from shotwatch.policy.engine import default_engine
    from shotwatch.policy.identity import IdentityService

    audit_log = AuditLog(db, SystemClock())
    identity = IdentityService(
        db, SystemClock(), settings.policy, default_engine().policies, audit=audit_log
    )
    print("shotwatch serve --demo: simulating the scenarios...", file=sys.stderr)
    reports = plan()
    keys = {s: Ed25519PrivateKey.generate() for s in sorted({r.serial for r in reports})}
    clock = SystemClock()
    frame = LocalFrame(*DEMO_ORIGIN)
    people = demo_users(identity, command, mode)
    consumer = PipelineConsumer(
        lambda sink: Pipeline(settings, clock, sink, frame=frame, tick_every_s=LIVE_TICK_EVERY_S),
        StoreSink(sessions, background=True),  # the loop never waits for the database
        preliminary=True,  # open incidents reach the queue within the shot wait (ADR 0106)
    )
    d = settings.dispatch.model_copy(update={"mode": mode})
    server = build_server(
        d,
        clock=clock,
        boundaries=boundaries,
        channels=[FakeChannel("demo-webhook")],
        verifier=Ingest(
            MemoryIngestStore({s: k.public_key() for s, k in keys.items()}), IngestLimits(), clock
        ),
        consumer=consumer,
        frame=frame,
        store=BatchedSqlFlowStore(sessions),
        identity=identity,
        audit_log=audit_log,
        evidence_store=SqlEvidenceStore(sessions, tmp / "evidence"),
    )
    server.demo_hint = (
        "DEMO SERVER: simulated sensors, throw-away accounts (printed in the terminal that "
        "started it: " + ", ".join(a.username for a in people) + "). Not for real use."
    )
    host, port = args.host or d.host, args.port or d.port
    base = f"http://{host}:{port}"

    async def _tick() -> None:
        await ticker(consumer, server.accept)

    async def _feed() -> None:
        await feed(base, reports, keys, tmp)
        print("shotwatch serve --demo: all scenarios sent", file=sys.stderr)

    server.background += [_tick, _feed]
    server.classify = True
    print(
        f"\nShotWatch demo on {base}/login  (district {command}, {len(keys)} sensors, "
        f"{len(reports)} reports over {reports[-1].t_rel_s:.0f} s)\n"
        + "".join(
            f"  sign in as {a.username} ({a.role}) password {a.password}"
            + (f" at workstation {a.workstation}" if a.workstation else "")
            + f"\n    TOTP secret {a.totp_secret} (needed only from outside "
            f"{', '.join(settings.policy.internal_networks)})\n"
            for a in people
        )
        + f"  review queue {base}/console · board {base}/board · officer {base}/officer\n",
        file=sys.stderr,
    )
    if args.open and _has_browser():
        webbrowser.open(f"{base}/login")
    live_for = getattr(args, "live_for", None)
    config = uvicorn.Config(create_app(server), host=host, port=port, log_level="warning")
    web = uvicorn.Server(config)
    if live_for is not None:
        print(f"shotwatch serve --demo: live for {live_for:.0f} s, then stops", file=sys.stderr)
        stop = threading.Timer(live_for, lambda: setattr(web, "should_exit", True))
        stop.daemon = True
        stop.start()
    web.run()
    s = server.flow
    print(
        f"shotwatch serve --demo: stopped; incidents in the review queue: {len(s.book.records)}"
        f", calls for service dispatched: {len(s.calls)}",
        file=sys.stderr,
    )
    return 0


def _has_browser() -> bool:
    """Open a browser only where one can show (a desktop session or macOS), never a text-mode
    browser that would take over the terminal."""
    import os

    return sys.platform == "darwin" or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


#: how often (s) the server deletes the sensor snippets its retention rule lets go
AUDIO_PURGE_EVERY_S = 600.0


def _purge_sensor_audio_periodically(server: Any, sessions: Any, clock: Any, root: Path) -> None:
    """Hold the stored snippets to the deployment's ``sensor_audio`` rule (ADR 0114): every
    :data:`AUDIO_PURGE_EVERY_S`, off the event loop, each purge audited with its rule."""
    import asyncio

    from shotwatch.records.sensor_audio import purge_sensor_audio, sensor_audio_rule

    rule = sensor_audio_rule([server.gate.engine.policy(server.gate.policy_id)])
    if rule is None:
        print("shotwatch serve: no sensor_audio retention rule: snippets are kept", file=sys.stderr)
        return

    def once() -> tuple[float, int]:
        now = clock.now()
        with sessions.begin() as s:
            return now, purge_sensor_audio(s, now_s=now, period_s=rule.period_s, root=root)

    async def loop() -> None:
        while True:
            now, n = await asyncio.to_thread(once)
            if n and server.audit is not None:
                server.audit(
                    "retention.sensor_audio",
                    {
                        "user": "system:retention",
                        "rule": rule.rule_id,
                        "policy": rule.policy_id,
                        "cutoff_s": now - rule.period_s,
                        "deleted": n,
                    },
                )
            await asyncio.sleep(AUDIO_PURGE_EVERY_S)

    server.background.append(loop)
