"""No live listening: every command, message type and route is checked (ADR 0062)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from shotwatch.cli import sensor as sensor_cli
from shotwatch.cli.main import build_parser
from shotwatch.core.model import iso_utc
from shotwatch.sensor.egress import ALLOWED_EGRESS, iter_routes, route_problems, walk_commands
from shotwatch.sensor.http_ingest import make_router
from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore, Rejection, RejectReason
from shotwatch.sensor.messages import (
    MESSAGE_TYPES,
    MessageType,
    ReportFields,
    encode_audio,
    max_audio_s,
    seal,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "shotwatch"
T = 1_800_000_000.0
SR = 8000

#: Audio-capable routes of the web server (branch ``server``) and what each returns.
SERVER_AUDIO_ROUTES = {
    "/api/v1/incidents/{incident_id}/audio/{serial}.wav": "snippet",
    "/api/v1/incidents/{incident_id}/audio/{serial}/waveform.png": "snippet",
    "/api/v1/incidents/{incident_id}/audio/{serial}/spectrogram.png": "snippet",
}


def test_every_sensor_subcommand_declares_its_audio_egress() -> None:
    paths = [p for p, _ in walk_commands(build_parser())]
    sensor_cmds = {p[1] for p in paths if len(p) == 2 and p[0] == "sensor"}
    assert sensor_cmds == set(sensor_cli.AUDIO_EGRESS), "declare new sensor commands"
    assert set(sensor_cli.AUDIO_EGRESS.values()) <= set(ALLOWED_EGRESS)
    assert "stream" not in " ".join(" ".join(p) for p in paths)


def test_no_other_command_can_reach_sensor_audio() -> None:
    parser = build_parser()
    top = {p[0] for p, _ in walk_commands(parser) if len(p) == 1}
    assert "sensor" in top
    for cmd in top - {"sensor"}:
        spec = importlib.util.find_spec(f"shotwatch.cli.{cmd}")
        assert spec is not None and spec.origin is not None, cmd
        text = Path(spec.origin).read_text(encoding="utf-8")
        for needle in ("sensor.buffer", "AudioBuffer", "sensor.search", "sounddevice"):
            assert needle not in text, f"shotwatch {cmd} touches {needle}"


def test_only_the_search_handler_reads_stored_audio() -> None:
    readers: dict[str, list[str]] = {"decrypt_segment": [], "buffer.read(": [], "sounddevice": []}
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for needle, hits in readers.items():
            if needle in text:
                hits.append(path.relative_to(SRC).as_posix())
    assert sorted(readers["decrypt_segment"]) == ["sensor/buffer.py"]
    assert sorted(readers["buffer.read("]) == ["sensor/search.py"]
    assert sorted(readers["sounddevice"]) == ["sensor/sources.py"]


def test_every_message_type_has_a_bounded_audio_allowance() -> None:
    assert set(MESSAGE_TYPES) == set(MessageType)
    for kind, spec in MESSAGE_TYPES.items():
        assert spec.audio in ("none", "snippet", "search_window"), kind
        limit = max_audio_s(kind, snippet_s=2.0, search_window_s=300.0)
        assert limit <= 300.0
        assert "stream" not in spec.doc.lower()


def _ingest() -> tuple[Ed25519PrivateKey, Ingest]:
    key = Ed25519PrivateKey.generate()
    return key, Ingest(MemoryIngestStore({"S": key.public_key()}), IngestLimits())


def _reason(ingest: Ingest, data: bytes) -> RejectReason:
    out = ingest.verify_report(data, received_s=T + 10)
    assert isinstance(out, Rejection), out
    return out.reason


def test_ingest_refuses_audio_beyond_each_types_allowance() -> None:
    key, ingest = _ingest()
    fields = ReportFields(iso_utc(T), 0.001, 0, 0, 0, None, None, None, 20, -10, 0.5)
    for seconds in (2.5, 10.0, 60.0):
        body = fields.to_body(np.zeros(round(seconds * SR), np.int16), SR, iso_utc(T - 1))
        reason = _reason(ingest, seal(key, MessageType.REPORT, "S", 1, body))
        assert reason in (RejectReason.SNIPPET_LENGTH, RejectReason.OVERSIZED)
    long_pre = fields.to_body(np.zeros(4 * SR, np.int16), SR, iso_utc(T - 3))
    long_pre["snippet_pre_s"] = 3.0
    long_pre["snippet_post_s"] = 1.0
    assert _reason(ingest, seal(key, MessageType.REPORT, "S", 2, long_pre)) is (
        RejectReason.INVALID_FIELD
    )
    audio = encode_audio(np.zeros(SR, np.int16), SR, iso_utc(T))
    hb = {
        "sent_utc": iso_utc(T),
        "uptime_s": 1,
        "clock_error_s": 0.001,
        "clock_synced": True,
        "disk_bytes": 0,
        "buffer_span_s": 0,
        "clipped_fraction": 0,
        "position": {},
        "snippet": audio,
    }
    assert _reason(ingest, seal(key, MessageType.HEARTBEAT, "S", 3, hb)) is (
        RejectReason.AUDIO_TOO_LONG
    )
    window = {
        "request_id": "r",
        "window_start_utc": iso_utc(T),
        "window_end_utc": iso_utc(T + 400),
        "pieces": [],
    }
    assert _reason(ingest, seal(key, MessageType.SEARCH_RESULT, "S", 4, window)) is (
        RejectReason.AUDIO_TOO_LONG
    )
    refusal = {"request_id": "r", "reason": "x", "detail": "y", "pieces": [audio]}
    assert _reason(ingest, seal(key, MessageType.SEARCH_REFUSAL, "S", 5, refusal)) is (
        RejectReason.AUDIO_TOO_LONG
    )


def test_sensor_http_routes_stream_nothing() -> None:
    _, ingest = _ingest()
    app = FastAPI()
    app.include_router(make_router(ingest))
    assert route_problems(app) == []
    methods = {
        m
        for r in iter_routes(app)
        if getattr(r, "path", "").startswith("/api")
        for m in getattr(r, "methods", set())
    }
    assert methods == {"POST"}, "the sensor route only receives"


def test_route_check_catches_a_listening_route() -> None:
    app = FastAPI()

    @app.get("/api/v1/sensors/{serial}/live")
    def live(serial: str) -> dict[str, str]:  # pragma: no cover - never called
        return {}

    @app.websocket("/ws/audio")
    async def ws(websocket: object) -> None:  # pragma: no cover - never called
        return None

    problems = route_problems(app)
    assert any("websocket" in p for p in problems)
    assert any("/live" in p for p in problems)


def test_web_server_routes_stream_nothing(boundaries_dir: Path) -> None:
    """Once the web server (branch ``server``) is merged: its whole route table is checked."""
    try:
        app_mod = importlib.import_module("shotwatch.api.app")
        build_mod = importlib.import_module("shotwatch.api.build")
        settings_mod = importlib.import_module("shotwatch.core.settings")
        boundaries_mod = importlib.import_module("shotwatch.dispatch.boundaries")
    except ImportError as exc:
        pytest.skip(f"the web server is not in this tree ({exc})")
    from shotwatch.core.clock import ReplayClock

    _, ingest = _ingest()
    server = build_mod.build_server(
        settings_mod.DispatchSettings(),
        clock=ReplayClock(T),
        boundaries=boundaries_mod.load_boundaries(boundaries_dir / "nypd-precincts.geojson"),
        channels=[],
        verifier=ingest,
    )
    app = app_mod.create_app(server)
    assert route_problems(app, declared=SERVER_AUDIO_ROUTES) == []
    paths = {getattr(r, "path", "") for r in iter_routes(app)}
    assert set(SERVER_AUDIO_ROUTES) <= paths, "declared audio routes must exist"
