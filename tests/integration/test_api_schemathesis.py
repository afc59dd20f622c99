"""The API survives property-based requests generated from its own OpenAPI schema: no 5xx.

Schemathesis drives every operation in-process (ASGI) with generated paths, bodies and
headers, authenticated as a detective of the precinct the seeded incident routes to (a
service token naming an identity-service account), and again with no credential at all:
then every protected operation must answer 401 and leave a denied entry in the audit log.
Requests come from 127.0.0.1 (on-site): Starlette's test client would otherwise report the
address "testclient", which the identity service rightly counts as remote.
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis not installed")

from hypothesis import HealthCheck, settings  # noqa: E402
from tests.conftest import DATA  # noqa: E402
from tests.serverkit import users  # noqa: E402

from shotwatch.api.app import Server, create_app  # noqa: E402
from shotwatch.api.build import build_server  # noqa: E402
from shotwatch.core.clock import ReplayClock  # noqa: E402
from shotwatch.core.model import Incident, Provenance  # noqa: E402
from shotwatch.core.settings import DispatchSettings  # noqa: E402
from shotwatch.dispatch.boundaries import load_boundaries  # noqa: E402
from shotwatch.dispatch.channels import FakeChannel  # noqa: E402

BOUNDARIES = DATA / "boundaries" / "nypd-precincts.geojson"
if not BOUNDARIES.exists():
    pytest.skip(f"police boundaries not found at {BOUNDARIES}", allow_module_level=True)


def _server() -> Server:
    nypd = load_boundaries(Path(BOUNDARIES))
    p = nypd.boundary("75").geometry.representative_point()
    srv = build_server(
        DispatchSettings(),
        clock=ReplayClock(1_800_000_000.0),
        boundaries=nypd,
        users=users(),
        channels=[FakeChannel()],
    )
    srv.flow.ingest(
        Incident(
            "inc-1",
            (),
            1.8e9,
            1.8e9 + 1,
            0,
            0,
            2,
            1,
            ((0, 0),),
            False,
            None,
            None,
            p.y,
            p.x,
            0.9,
            provenance=Provenance.automatic("b", "1", 1.8e9),
        )
    )
    return srv


def _onsite(app):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            scope = {**scope, "client": ("127.0.0.1", 40000)}
        await app(scope, receive, send)

    return wrapped


SERVER = _server()
schema = schemathesis.openapi.from_asgi("/openapi.json", _onsite(create_app(SERVER)))
PUBLIC = {"/api/v1/reports", "/api/v1/login", "/login", "/logout"}
AUTH = {"Authorization": "Bearer tok-det", "X-Purpose": "emergency_response"}


@schema.exclude(path="/api/v1/events").parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:  # type: ignore[no-untyped-def]
    response = case.call(headers=AUTH)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])


@schema.exclude(path="/api/v1/events").parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_unauthenticated_requests_get_401_and_an_audit_record(case) -> None:  # type: ignore[no-untyped-def]
    log = SERVER.gate.audit
    before = log.stats["entries"]
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    if case.path in PUBLIC:
        return
    if response.status_code in (404, 405) and "not signed in" not in response.text:
        return  # the generated method and path matched no route at all
    assert response.status_code == 401, (case.as_curl_command(), response.text[:300])
    assert response.json()["detail"]["reason"] == "not signed in"
    new = [log.entry(r.seq) for r in log.rows() if r.seq > before]
    assert any(e["actor"] == "unauthenticated" and not e["allowed"] for e in new)
