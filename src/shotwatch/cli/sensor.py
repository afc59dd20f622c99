"""``shotwatch sensor``: run a sensor agent, make its keys, show its state, answer a search.

No subcommand plays, streams or exports continuous audio (ADR 0062). What each one can
return is declared in :data:`AUDIO_EGRESS`, and a test fails when a subcommand is added
without a declaration.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from shotwatch.cli.common import add_db_option
from shotwatch.core.clock import ReplayClock, SystemClock
from shotwatch.core.errors import InputError

#: What audio each subcommand can output: "none", "reports" (signed 1 s + 1 s snippets into
#: the spool/transport) or "search_window" (one authorized, recorded missed-shot window).
AUDIO_EGRESS: dict[str, str] = {
    "run": "reports",
    "keygen": "none",
    "status": "none",
    "search": "search_window",
    "register": "none",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sensor", help="the sensor agent (buffer, reports, search, health)")
    ss = p.add_subparsers(dest="sensor_command", metavar="SENSOR_COMMAND", required=True)

    run = ss.add_parser("run", help="run the sensor pipeline on its configured audio source")
    run.add_argument("--config", required=True, metavar="FILE", help="agent TOML file")
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.set_defaults(func=run_cmd)

    keygen = ss.add_parser("keygen", help="create the signing key and buffer KEK if missing")
    keygen.add_argument("--config", required=True, metavar="FILE")
    keygen.set_defaults(func=keygen_cmd)

    status = ss.add_parser("status", help="buffer span, disk use, spool, search-log head")
    status.add_argument("--config", required=True, metavar="FILE")
    status.set_defaults(func=status_cmd)

    search = ss.add_parser(
        "search", help="answer one server-signed missed-shot search request (recorded)"
    )
    search.add_argument("--config", required=True, metavar="FILE")
    search.add_argument("--request", required=True, metavar="FILE", help="signed request")
    search.add_argument(
        "--out", required=True, metavar="FILE", help="where the signed answer is written"
    )
    search.set_defaults(func=search_cmd)

    reg = ss.add_parser(
        "register", help="server side: trust a sensor's public key (sensor registry table)"
    )
    add_db_option(reg)
    reg.add_argument("--serial", required=True)
    reg.add_argument("--public-key", required=True, help="base64 (from 'sensor keygen') or PEM")
    for name in ("x-m", "y-m", "z-m", "lat-deg", "lon-deg"):
        reg.add_argument(f"--{name}", type=float, default=None)
    reg.set_defaults(func=register_cmd)


def run_cmd(args: argparse.Namespace) -> int:
    from shotwatch.sensor.agent import SensorAgent, load_agent_config

    agent_cfg, settings = load_agent_config(args.config)

    def report_error(exc: InputError) -> None:
        print(f"shotwatch sensor: skipped: {exc}", file=sys.stderr)

    agent = SensorAgent(agent_cfg, settings, on_error=report_error)
    summary = agent.run()
    if args.json:
        print(json.dumps(asdict(summary), indent=2))
    else:
        print(
            f"sensor {summary.serial}: {summary.audio_s:.1f} s of audio, {summary.picks} picks, "
            f"{summary.reports} reports, {summary.heartbeats} heartbeats; delivered "
            f"{summary.delivered}, pending {summary.pending}; buffer span "
            f"{summary.buffer_span_s:.0f} s, {summary.buffer_disk_bytes} bytes"
        )
    return 0


def keygen_cmd(args: argparse.Namespace) -> int:
    from shotwatch.sensor.agent import load_agent_config
    from shotwatch.sensor.keys import (
        load_or_create_kek,
        load_or_create_signing_key,
        public_key_text,
    )

    cfg, _ = load_agent_config(args.config)
    key = load_or_create_signing_key(cfg.signing_key_file)
    kek = load_or_create_kek(cfg.kek_file, buffer_dir=Path(cfg.data_dir) / "buffer")
    print(json.dumps({"serial": cfg.serial, "public_key": public_key_text(key), "kek_id": kek.kid}))
    return 0


def _open_offline(config: str):  # type: ignore[no-untyped-def]
    from shotwatch.sensor.agent import load_agent_config
    from shotwatch.sensor.buffer import AudioBuffer
    from shotwatch.sensor.keys import load_or_create_kek

    cfg, settings = load_agent_config(config)
    data = Path(cfg.data_dir)
    meta_path = data / "buffer" / "buffer.json"
    if not meta_path.exists():
        raise InputError(str(meta_path), "buffer", "no buffer yet (run the sensor first)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    kek = load_or_create_kek(cfg.kek_file, buffer_dir=data / "buffer", create=False)
    buf = AudioBuffer.open(
        data / "buffer",
        kek,
        sample_rate_hz=int(meta["sample_rate_hz"]),
        retention_s=settings.sensor.retention_h * 3600.0,
        segment_s=settings.sensor.segment_s,
        now_s=SystemClock().now() if cfg.source.kind == "live" else None,
    )
    return cfg, settings, buf


def status_cmd(args: argparse.Namespace) -> int:
    from shotwatch.sensor.search import SearchLog
    from shotwatch.sensor.spool import Spool

    cfg, _, buf = _open_offline(args.config)
    try:
        data = Path(cfg.data_dir)
        spool = Spool(data / "spool.sqlite")
        log = SearchLog(data / "searches.jsonl")
        print(
            json.dumps(
                {
                    "serial": cfg.serial,
                    "buffer_segments": len(buf.segments),
                    "buffer_span_s": buf.span_s,
                    "buffer_disk_bytes": buf.disk_bytes,
                    "spool_pending": len(spool),
                    "spool_dead": len(spool.dead()),
                    "search_requests": len(log),
                    "search_log_head": log.head,
                },
                indent=2,
            )
        )
        spool.close()
    finally:
        buf.close()
    return 0


def search_cmd(args: argparse.Namespace) -> int:
    from shotwatch.sensor.keys import load_or_create_signing_key, parse_public_key
    from shotwatch.sensor.search import MissedShotSearch, SearchLog
    from shotwatch.sensor.signer import SensorSigner

    cfg, settings, buf = _open_offline(args.config)
    try:
        if not cfg.server_public_key:
            raise InputError(args.config, "agent.server_public_key", "needed to check requests")
        if not cfg.serial:
            raise InputError(args.config, "agent.serial", "needed to answer a search")
        data = Path(cfg.data_dir)
        signer = SensorSigner(
            cfg.serial,
            load_or_create_signing_key(cfg.signing_key_file, create=False),
            data / "sequence",
        )
        handler = MissedShotSearch(
            buffer=buf,
            log=SearchLog(data / "searches.jsonl"),
            signer=signer,
            server_key=parse_public_key(cfg.server_public_key, where=args.config),
            # A replaying sensor lives in its data's time; a live one in the system's.
            clock=SystemClock() if cfg.source.kind == "live" else ReplayClock(buf.newest_s or 0.0),
            max_window_s=settings.sensor.max_search_window_s,
            request_ttl_s=settings.sensor.search_request_ttl_s,
        )
        answer = handler.handle(Path(args.request).read_bytes())
        Path(args.out).write_bytes(answer.message)
        print(
            json.dumps(
                {
                    "granted": answer.granted,
                    "reason": answer.reason,
                    "detail": answer.detail,
                    "seq": answer.seq,
                }
            )
        )
        return 0 if answer.granted else 1
    finally:
        buf.close()


def register_cmd(args: argparse.Namespace) -> int:
    from shotwatch.sensor.ingest import SqlIngestStore
    from shotwatch.storage.db import make_engine, migrate, session_factory

    url = migrate(args.db)
    engine = make_engine(url)
    try:
        SqlIngestStore(session_factory(engine)).register(
            args.serial,
            args.public_key,
            registered_s=SystemClock().now(),
            x_m=args.x_m,
            y_m=args.y_m,
            z_m=args.z_m,
            lat_deg=args.lat_deg,
            lon_deg=args.lon_deg,
        )
    finally:
        engine.dispose()
    print(json.dumps({"registered": args.serial}))
    return 0
