"""The web application end to end in-process: signed report ingest and its rejections, the
policy gate on every route, review commands over HTTP, calls for service in both modes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from tests.serverkit import EveryThirdPulse, report, users

from shotwatch.api.app import Server, create_app
from shotwatch.api.build import build_server
from shotwatch.core.clock import ReplayClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Incident, Provenance, iso_utc
from shotwatch.core.settings import DispatchSettings
from shotwatch.dispatch.boundaries import BoundarySet, load_boundaries
from shotwatch.dispatch.channels import FakeChannel
from shotwatch.policy.web import routes_without_action
from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore
from shotwatch.sensor.messages import ReportFields
from shotwatch.sensor.signer import SensorSigner

T0 = 1_800_000_000.0
SR = 12000
SS = "nypd-shotspotter"
SF = "sf-dem-gunshot-detection"
DET = {"Authorization": "Bearer tok-det", "X-Purpose": "emergency_response"}


@pytest.fixture(scope="module")
def nypd(boundaries_dir: Path) -> BoundarySet:
    return load_boundaries(boundaries_dir / "nypd-precincts.geojson")


@pytest.fixture(scope="module")
def sfb(boundaries_dir: Path) -> BoundarySet:
    return load_boundaries(boundaries_dir / "sfpd-districts.geojson")


async def _call(app: FastAPI, method: str, path: str, **kw: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, **kw)


def call(app: FastAPI, method: str, path: str, **kw: Any) -> httpx.Response:
    return asyncio.run(_call(app, method, path, **kw))


@pytest.fixture
def nypd_server(nypd: BoundarySet, tmp_path: Path) -> tuple[Server, FastAPI, dict[str, Any]]:
    p = nypd.boundary("75").geometry.representative_point()
    frame = LocalFrame(p.y, p.x)
    keys = {s: Ed25519PrivateKey.generate() for s in ("SN-A", "SN-B", "SN-C")}
    store = MemoryIngestStore({s: k.public_key() for s, k in keys.items()})
    clock = ReplayClock(T0)
    srv = build_server(
        DispatchSettings(max_report_bytes=200_000),
        clock=clock,
        boundaries=nypd,
        users=users(),
        channels=[FakeChannel("webhook")],
        verifier=Ingest(store, IngestLimits(), clock),
        consumer=EveryThirdPulse(frame),
        frame=frame,
    )
    signers = {s: SensorSigner(s, k, tmp_path / f"seq-{s}") for s, k in keys.items()}
    return srv, create_app(srv), {"signers": signers, "clock": clock, "frame": frame}


def test_signed_reports_make_an_incident_in_the_queue(nypd_server) -> None:  # type: ignore[no-untyped-def]
    srv, app, ctx = nypd_server
    q = srv.flow.hub.subscribe()
    pos = {"SN-A": (0.0, 150.0), "SN-B": (130.0, -80.0), "SN-C": (-130.0, -80.0)}
    made: list[str] = []
    for i, (s, (x, y)) in enumerate(pos.items()):
        r = call(
            app, "POST", "/api/v1/reports", content=report(ctx["signers"][s], x, y, T0 + 0.1 * i)
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted"
        made += r.json()["incidents"]
    assert made == ["inc-1"]
    ev = q.get_nowait()
    assert ev["topic"] == "queue" and ev["data"]["incident_id"] == "inc-1"
    r = call(app, "GET", "/api/v1/queue", headers=DET)
    assert [it["incident_id"] for it in r.json()] == ["inc-1"]
    d = call(app, "GET", "/api/v1/incidents/inc-1", headers=DET).json()
    assert {s["serial"] for s in d["sensors"]} == set(pos)
    assert all(s["audio"] for s in d["sensors"]) and d["timeline"][0]["sensors"] == 3
    assert d["classification"]["scores"]["gunfire"] == 0.97
    gj = call(app, "GET", "/api/v1/incidents/inc-1/map.geojson", headers=DET).json()
    layers = sorted(f["properties"]["layer"] for f in gj["features"])
    assert layers == ["location", "sensor", "sensor", "sensor", "uncertainty"]
    ring = next(f for f in gj["features"] if f["properties"]["layer"] == "uncertainty")
    lat0 = d["lat_deg"]
    dlat_m = max(abs(c[1] - lat0) for c in ring["geometry"]["coordinates"][0]) * 111_000
    assert dlat_m == pytest.approx(12.0, rel=0.05)  # the shot's 12 m uncertainty
    wav = call(app, "GET", "/api/v1/incidents/inc-1/audio/SN-B.wav", headers=DET)
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF" and len(wav.content) == 44 + 4 * SR
    for img in ("waveform", "spectrogram"):
        r = call(app, "GET", f"/api/v1/incidents/inc-1/audio/SN-B/{img}.png", headers=DET)
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        call(app, "GET", "/api/v1/incidents/inc-1/audio/SN-Z.wav", headers=DET).status_code == 404
    )


def test_bad_reports_get_clear_4xx(nypd_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv, app, ctx = nypd_server
    audits: list[tuple[str, dict[str, Any]]] = []
    srv.audit = lambda kind, data: audits.append((kind, data))
    good = report(ctx["signers"]["SN-A"], 0.0, 0.0, T0)

    def post(body: bytes) -> httpx.Response:
        return call(app, "POST", "/api/v1/reports", content=body)

    r = post(b"not json at all")
    assert r.status_code == 400 and r.json()["detail"]["reason"] == "malformed"
    env = json.loads(good)
    unsigned = {k: v for k, v in env.items() if k not in ("sig", "signature")}
    assert post(json.dumps(unsigned).encode()).status_code in (400, 401)
    stranger = SensorSigner("SN-X", Ed25519PrivateKey.generate(), tmp_path / "sx")
    r = post(report(stranger, 0, 0, T0))
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "unknown_sensor"
    impostor = SensorSigner("SN-A", Ed25519PrivateKey.generate(), tmp_path / "si")
    r = post(report(impostor, 0, 0, T0))
    assert r.status_code == 401 and r.json()["detail"]["reason"] == "bad_signature"
    assert post(good).status_code == 200
    r = post(good)  # the same bytes again: already accepted, counted once
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    newer = report(ctx["signers"]["SN-A"], 0, 0, T0 + 1)
    assert post(newer).status_code == 200
    # an older sequence number with different bytes is a replay
    old_seq = ctx["signers"]["SN-A"]
    env2 = json.loads(newer)
    assert env2 != env
    r = post(_replay_with_old_seq(old_seq, tmp_path))
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "replayed"
    r = post(b"{" + b" " * 250_000 + b"}")
    assert r.status_code == 413
    kinds = [k for k, _ in audits]
    assert kinds.count("report.rejected") == 6  # every refusal is audited


def _replay_with_old_seq(signer: SensorSigner, tmp_path: Path) -> bytes:
    """A message signed with the right key but a sequence number already passed."""
    from shotwatch.sensor.messages import MessageType, seal

    fields = ReportFields(
        iso_utc(T0 + 5), 0.0004, 1.0, 1.0, 5.0, None, None, None, 20.0, -10.0, 0.9
    )
    body = fields.to_body(np.zeros(2 * SR, np.int16), SR, iso_utc(T0 + 4))
    return seal(signer.key, MessageType.REPORT, signer.serial, 1, body)


def _ingest(srv: Server, iid: str, lat: float, lon: float, rounds: int = 2) -> None:
    srv.flow.ingest(
        Incident(
            iid,
            (),
            T0,
            T0 + 1,
            0,
            0,
            rounds,
            1,
            ((0, 0),),
            False,
            None,
            None,
            lat,
            lon,
            0.9,
            provenance=Provenance.automatic("b", "1", T0),
        )
    )


def test_policy_gate_on_routes(nypd_server, nypd: BoundarySet) -> None:  # type: ignore[no-untyped-def]
    srv, app, _ = nypd_server
    p75 = nypd.boundary("75").geometry.representative_point()
    p1 = nypd.boundary("1").geometry.representative_point()
    _ingest(srv, "in-75", p75.y, p75.x)
    _ingest(srv, "in-1", p1.y, p1.x)
    # not signed in: 401, and a browser is sent to the login page
    assert call(app, "GET", "/api/v1/queue").status_code == 401
    r = call(app, "GET", "/console", headers={"accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    # own command only: each detective sees their precinct's incident
    ids75 = [i["incident_id"] for i in call(app, "GET", "/api/v1/queue", headers=DET).json()]
    h1 = {**DET, "Authorization": "Bearer tok-det1"}
    ids1 = [i["incident_id"] for i in call(app, "GET", "/api/v1/queue", headers=h1).json()]
    assert ids75 == ["in-75"] and ids1 == ["in-1"]
    assert call(app, "GET", "/api/v1/incidents/in-1", headers=DET).status_code == 403
    # no articulable need (purpose): refused
    r = call(app, "GET", "/api/v1/incidents/in-75", headers={"Authorization": "Bearer tok-det"})
    assert r.status_code == 403
    # an officer may view but not review
    po = {**DET, "Authorization": "Bearer tok-po"}
    assert call(app, "GET", "/api/v1/incidents/in-75", headers=po).status_code == 200
    r = call(
        app,
        "POST",
        "/api/v1/incidents/in-75/commands/confirm",
        headers=po,
        json={"reason": "looks real"},
    )
    assert r.status_code == 403
    # every route names its action, except sensor ingest (authenticated by its signature)
    assert routes_without_action(app) == ["POST /api/v1/reports"]


def test_review_commands_over_http(nypd_server, nypd: BoundarySet) -> None:  # type: ignore[no-untyped-def]
    srv, app, ctx = nypd_server
    p = nypd.boundary("75").geometry.representative_point()
    _ingest(srv, "rv", p.y, p.x, rounds=2)
    ctx["clock"].advance_by(9.0)
    url = "/api/v1/incidents/rv/commands"
    r = call(app, "POST", f"{url}/confirm", headers=DET, json={"reason": ""})
    assert r.status_code == 422  # schema: a reason is required
    r = call(app, "POST", f"{url}/confirm", headers=DET, json={"reason": "ok"})
    assert r.status_code == 200 and r.json()["outcome"] == "Failed"  # too short
    r = call(app, "POST", f"{url}/launch", headers=DET, json={"reason": "why not"})
    assert r.json()["outcome"] == "Failed" and "unknown" in r.json()["reason"]
    r = call(
        app,
        "POST",
        f"{url}/set_rounds",
        headers=DET,
        json={"reason": "counted five", "params": {"rounds": 5}},
    )
    assert r.json()["outcome"] == "OK" and r.json()["version"] == 2
    r = call(app, "POST", f"{url}/confirm", headers=DET, json={"reason": "clear gunfire"})
    body = r.json()
    assert body["outcome"] == "OK" and body["call"]["unit_id"] == "75"
    assert body["call"]["status"] == "in_cad" and body["call"]["rounds"] == 5
    d = call(app, "GET", "/api/v1/incidents/rv", headers=DET).json()
    assert [h["version"] for h in d["history"]] == [1, 2, 3]
    assert d["machine"]["rounds"] == 2 and d["rounds"] == 5
    assert d["history"][2]["incident"]["provenance"]["supersedes"] == "rv@v2"
    # the too-short reason is journalled as Failed; an unknown command name is not a command
    assert [j["outcome"] for j in d["journal"]] == ["Failed", "OK", "OK"]
    assert d["time_to_decision_s"] == pytest.approx(9.0)
    calls = call(app, "GET", "/api/v1/calls", headers=DET).json()
    assert [c["incident_id"] for c in calls] == ["rv"]
    # the console form path gives the same outcome as an HTML fragment
    r = call(
        app,
        "POST",
        "/console/incidents/rv/commands",
        headers=DET,
        data={"command": "add_note", "reason": "context", "text": "near school"},
    )
    assert r.status_code == 200 and 'data-outcome="OK"' in r.text
    r = call(
        app,
        "POST",
        "/console/incidents/rv/commands",
        headers=DET,
        data={"command": "set_rounds", "reason": "recount", "rounds": "many"},
    )
    assert 'data-outcome="Failed"' in r.text and "not a number" in r.text
    page = call(app, "GET", "/console/incidents/rv", headers=DET)
    assert page.status_code == 200 and "near school" in page.text and "rv@v2" in page.text
    schema = call(app, "GET", "/openapi.json").json()
    assert "/api/v1/incidents/{incident_id}/commands/{name}" in schema["paths"]


def test_sf_dem_flow_over_http(sfb: BoundarySet) -> None:
    clock = ReplayClock(T0)
    srv = build_server(
        DispatchSettings(mode="sfdem", supervisor_workstations=["DEM-SUP-WS-1"]),
        clock=clock,
        boundaries=sfb,
        users=users(),
        channels=[],
    )
    app = create_app(srv)
    p = sfb.boundary("MISSION").geometry.representative_point()
    _ingest(srv, "sf-1", p.y, p.x)
    from shotwatch.incidents.review import ConfirmGunfire

    asyncio.run(srv.flow.review("sf-1", ConfirmGunfire("irc.analyst", "gunfire confirmed")))
    # the workstation is fixed per token (or per session at sign-in); a header cannot move it
    sup = {"Authorization": "Bearer tok-sup", "X-Purpose": "dispatch"}
    disp = {"Authorization": "Bearer tok-disp", "X-Purpose": "dispatch"}
    assert call(app, "GET", "/api/v1/calls", headers=disp).json() == []
    off_ws = {"Authorization": "Bearer tok-sup-home", "X-Purpose": "dispatch"}
    lying = {**off_ws, "X-Workstation": "DEM-SUP-WS-1"}
    assert call(app, "GET", "/api/v1/calls", headers=lying).json() == []
    assert call(app, "GET", "/api/v1/calls", headers=off_ws).json() == []  # nothing visible
    r = call(app, "POST", "/api/v1/incidents/sf-1/cad", headers=off_ws, json={"reason": "x"})
    assert r.status_code == 403  # not a listed supervisor workstation
    calls = call(app, "GET", "/api/v1/calls", headers=sup).json()
    assert [(c["unit_id"], c["status"]) for c in calls] == [("MISSION", "pending_cad")]
    r = call(app, "POST", "/api/v1/incidents/sf-1/cad", headers=disp, json={"reason": "x"})
    assert r.status_code == 403
    r = call(app, "POST", "/api/v1/incidents/sf-1/cad", headers=sup, json={"reason": "entered"})
    assert r.json()["outcome"] == "OK" and r.json()["call"]["status"] == "in_cad"
    seen = call(app, "GET", "/api/v1/calls", headers=disp).json()
    assert [c["status"] for c in seen] == ["in_cad"]
    clock.advance_by(7 * 86400 + 60)
    assert call(app, "GET", "/api/v1/calls", headers=disp).json() == []
    assert not math.isnan(T0)


def test_refusals_and_decisions_reach_the_audit_log(nypd_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from shotwatch.api.build import audit_sink
    from shotwatch.audit.log import AuditLog
    from shotwatch.storage.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    migrate(url)
    srv, app, ctx = nypd_server
    log = AuditLog(make_engine(url), ctx["clock"])
    srv.audit = audit_sink(log)
    srv.gate.audit = log
    assert call(app, "POST", "/api/v1/reports", content=b"garbage").status_code == 400
    assert call(app, "GET", "/api/v1/queue", headers=DET).status_code == 200
    h1 = {**DET, "Authorization": "Bearer tok-po"}
    assert call(app, "GET", "/api/v1/incidents/nope", headers=h1).status_code in (403, 404)
    rows = [log.entry(r.seq) for r in log.rows()]
    kinds = [(e["actor"], e["action"], e["allowed"]) for e in rows]
    assert ("unauthenticated", "sensor.report", False) in kinds
    assert ("det.ana", "incident.search", True) in kinds
    assert any(a == "po.cy" and act == "incident.view" for a, act, _ in kinds)
    assert log.verify().ok


def test_incidents_are_scored_off_the_event_loop_then_queued(nypd_server) -> None:  # type: ignore[no-untyped-def]
    srv, app, ctx = nypd_server
    srv.classify = True
    pos = {"SN-A": (0.0, 150.0), "SN-B": (130.0, -80.0), "SN-C": (-130.0, -80.0)}

    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for i, (s, (x, y)) in enumerate(pos.items()):
                body = report(ctx["signers"][s], x, y, T0 + 0.1 * i)
                r = await client.post("/api/v1/reports", content=body)
                assert r.status_code == 200
            await srv.settle()

    asyncio.run(go())
    inc = srv.flow.book.records["inc-1"].current.incident
    c = inc.extra["classification"]
    assert (
        "log-odds" in c["explanation"] and inc.gunfire_probability == c["scores"]["gunfire (fused)"]
    )


def test_live_events_are_encoded_once_and_still_filtered_per_subscriber(nypd_server) -> None:  # type: ignore[no-untyped-def]
    """Fifty consoles share one encoding of each event and a burst goes out in one write
    (issue #5), but each subscriber still gets only what its user may view: the 75th-precinct
    detective sees the 75th's incidents, the 1st precinct's detective does not."""
    from starlette.requests import Request

    from shotwatch.api.app import _sse

    srv, app, ctx = nypd_server

    def request(token: str) -> Request:
        return Request(
            {
                "type": "http",
                "method": "GET",
                "path": "/api/v1/events",
                "query_string": b"",
                "headers": [
                    (b"authorization", f"Bearer {token}".encode()),
                    (b"x-purpose", b"emergency_response"),
                ],
                "client": ("127.0.0.1", 123),  # on the station network, as the other tests
                "app": app,
            }
        )

    async def go() -> tuple[list[bytes], list[bytes], list[bytes]]:
        streams = [_sse(request(t), srv) for t in ("tok-det", "tok-det", "tok-det1")]
        for s in streams:
            assert await anext(s) == b": connected\n\n"
        pos = {"SN-A": (0.0, 150.0), "SN-B": (130.0, -80.0), "SN-C": (-130.0, -80.0)}
        for burst in range(2):  # two incidents before any console reads
            for i, (sn, (x, y)) in enumerate(pos.items()):
                t = T0 + 5.0 * burst + 0.1 * i
                srv.ingest_verified(srv.verifier.verify_report(report(ctx["signers"][sn], x, y, t)))
        got: list[list[bytes]] = []
        for s in streams:
            out = []
            with contextlib.suppress(TimeoutError):
                out.append(await asyncio.wait_for(anext(s), 0.5))
            got.append(out)
            await s.aclose()
        return got[0], got[1], got[2]

    a, b, other = asyncio.run(go())
    assert len(a) == 1 and a[0].startswith(b"id: ") and a[0].count(b"event: queue") == 2
    assert b'"incident_id": "inc-1"' in a[0] and b'"incident_id": "inc-2"' in a[0]
    assert b == a
    cache = srv.wire_cache
    assert len(cache) == 2 and all(w in a[0] for _, w in cache.values())  # encoded once each
    assert other == []  # another precinct's detective is not sent them


def test_a_pipeline_fault_is_recorded_and_loses_no_report(nypd_server) -> None:  # type: ignore[no-untyped-def]
    """A fault inside the pipeline must not turn an accepted report into a lost one (a 500
    makes the sensor retry, and the retry is then only a duplicate): the report is accepted,
    its pulse kept as evidence, and the fault goes to the audit trail."""
    srv, app, ctx = nypd_server
    audited: list[tuple[str, dict[str, Any]]] = []
    srv.audit = lambda kind, data: audited.append((kind, data))

    class Broken:
        def feed(self, pulse: Any) -> Any:
            raise ValueError("repeats may not contain negative values")

    srv.consumer = Broken()  # type: ignore[assignment]
    r = call(app, "POST", "/api/v1/reports", content=report(ctx["signers"]["SN-A"], 0, 150, T0))
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    assert [k for k, _ in audited] == ["pipeline.failed"]
    assert "negative values" in audited[0][1]["error"]
    assert len(srv.pipeline_errors) == 1 and srv.evidence.pulses


def test_lifespan_prefers_the_loop_freezes_the_old_and_closes_the_sink(nypd_server) -> None:  # type: ignore[no-untyped-def]
    """While the app runs, the interpreter hands the lock back to the event loop quickly
    and long-lived objects are frozen out of the cyclic GC's full collections; at shutdown
    the old switch interval returns, the objects are unfrozen and the pipeline consumer is
    closed (its store writes what it holds, ADR 0108, 0110)."""
    import gc
    import sys

    srv, app, _ = nypd_server
    closed: list[bool] = []
    srv.consumer.close = lambda: closed.append(True)
    before = sys.getswitchinterval()
    seen: list[float] = []

    frozen: list[int] = []
    srv.gc_freeze_every_s = 0.01

    async def run() -> None:
        async with app.router.lifespan_context(app):
            seen.append(sys.getswitchinterval())
            for _ in range(200):  # the long-lived objects are moved out of the GC's sight
                await asyncio.sleep(0.01)
                if gc.get_freeze_count():
                    frozen.append(gc.get_freeze_count())
                    break

    assert gc.get_freeze_count() == 0
    asyncio.run(run())
    assert seen == [pytest.approx(srv.switch_interval_s)] and seen[0] < before
    assert sys.getswitchinterval() == pytest.approx(before)
    assert closed == [True]
    assert frozen and frozen[0] > 1000
    assert gc.get_freeze_count() == 0  # and back in it at shutdown
