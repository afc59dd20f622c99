"""Signing in to the server for real, over HTTP: password + TOTP through the identity service,
sessions re-read at every request, and an audit record for every refusal (issues #5, #6).

Requests go through httpx's ASGI transport, which sets the connection's address: 127.0.0.1 is
on-site (policy.internal_networks), 203.0.113.9 (TEST-NET-3) is remote.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from tests.serverkit import users

from shotwatch.api.app import Server, create_app
from shotwatch.api.build import build_server
from shotwatch.core.clock import ReplayClock
from shotwatch.core.model import Incident, Provenance
from shotwatch.core.settings import DispatchSettings, PolicySettings
from shotwatch.dispatch.boundaries import BoundarySet, load_boundaries
from shotwatch.dispatch.channels import FakeChannel

T0 = 1_800_000_000.0
SS = "nypd-shotspotter"
SF = "sf-dem-gunshot-detection"
ONSITE = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.9", 50000)
PW = "correct horse battery"


@pytest.fixture(scope="module")
def nypd(boundaries_dir: Path) -> BoundarySet:
    return load_boundaries(boundaries_dir / "nypd-precincts.geojson")


@dataclass
class World:
    srv: Server
    app: FastAPI
    clock: ReplayClock
    totp: dict[str, str] = field(default_factory=dict)
    refused: list[tuple[str, str, int, int]] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        *,
        client: tuple[str, int] = ONSITE,
        token: str | None = None,
        purpose: str | None = None,
        **kw: Any,
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if purpose:
            headers["X-Purpose"] = purpose
        cookies = kw.pop("cookies", None)
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://sw") as c:
                return await c.request(method, path, headers=headers, **kw)

        before = self.head()
        r = asyncio.run(go())
        if r.status_code in (401, 403) and not path.endswith("login"):
            self.refused.append((method, path, before, self.head()))
        return r

    def head(self) -> int:
        """Sequence number of the last audit entry."""
        return max((row.seq for row in self.srv.gate.audit.rows()), default=0)

    def login(self, username: str, *, client: tuple[str, int] = ONSITE, **body: Any) -> Any:
        return self.request(
            "POST",
            "/api/v1/login",
            client=client,
            json={"username": username, "password": PW, **body},
        )

    def code(self, username: str) -> str:
        return pyotp.TOTP(self.totp[username]).at(int(self.clock.now()))

    def audit_entries(self) -> list[dict[str, Any]]:
        log = self.srv.gate.audit
        return [log.entry(r.seq) for r in log.rows()]


def _incident(srv: Server, iid: str, lat: float, lon: float) -> None:
    inc = Incident(iid, (), T0 - 60, T0 - 59, 0, 0, 2, 1, ((0, 0),), False, None, None, lat,
                   lon, 0.9, provenance=Provenance.automatic("b", "1", T0 - 60))  # fmt: skip
    srv.flow.ingest(inc)


def _person(srv: Server, uid: str, policy: str, **attrs: str) -> str:
    ids = srv.identity
    ids.create_user(user_id=uid, username=uid, password=PW, **attrs)
    ids.grant_access(uid, policy, requested_by="co", approved_by="itb")
    ids.acknowledge_training(uid, policy)
    return str(ids.enroll_totp(uid))


@pytest.fixture
def world(nypd: BoundarySet) -> World:
    clock = ReplayClock(T0)
    srv = build_server(
        DispatchSettings(),
        clock=clock,
        boundaries=nypd,
        users=users(),
        channels=[FakeChannel("webhook")],
        policy_settings=PolicySettings(lockout_failures=3, session_idle_s=600),
    )
    srv.identity.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    p = nypd.boundary("75").geometry.representative_point()
    _incident(srv, "in-75", p.y, p.x)
    w = World(srv, create_app(srv), clock)
    w.totp["det.kim"] = _person(
        srv, "det.kim", SS, agency="NYPD", rank="detective", role="investigator", command="75"
    )
    return w


def _check_every_refusal_audited(w: World) -> None:
    """Each 401/403 left a denied entry naming its path, and the chain verifies."""
    entries = w.audit_entries()
    assert w.refused, "the test should have been refused somewhere"
    for method, path, before, after_seq in w.refused:
        after = [e for e in entries if before < e["seq"] <= after_seq]  # this request's own
        assert any(
            not e["allowed"]
            and e["detail"].get("path") == path
            and e["detail"].get("method") == method
            for e in after
        ), (method, path)
    report = w.srv.gate.audit.verify()
    assert report.ok and report.entries == len(entries)


def test_remote_sign_in_needs_totp_and_the_session_carries_it(world: World) -> None:
    w = world
    # remote without a code, or with a wrong one: refused (and audited by the identity service)
    assert w.login("det.kim", client=REMOTE).status_code == 401
    assert w.login("det.kim", client=REMOTE, totp="000000").status_code == 401
    r = w.login("det.kim", client=REMOTE, totp=w.code("det.kim"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["remote"] and body["second_factor"] and body["user_id"] == "det.kim"
    tok = body["token"]
    ok = w.request("GET", "/api/v1/incidents/in-75", client=REMOTE, token=tok,
                   purpose="criminal_investigation")  # fmt: skip
    assert ok.status_code == 200 and ok.json()["incident_id"] == "in-75"
    # on-site, no code needed; the password alone gives a session without a second factor
    r = w.login("det.kim", totp="")
    assert r.status_code == 200 and not r.json()["remote"] and not r.json()["second_factor"]
    # a purpose is required to view evidence; immigration enforcement is always refused
    no_purpose = w.request("GET", "/api/v1/incidents/in-75", client=REMOTE, token=tok)
    assert no_purpose.status_code == 403
    imm = w.request("GET", "/api/v1/incidents/in-75/map.geojson", client=REMOTE, token=tok,
                    purpose="immigration_enforcement")  # fmt: skip
    assert imm.status_code == 403 and "NYPD-SS-NO-IMMIGRATION" in imm.json()["detail"]["rules"]
    # no credential, or a made-up one: 401
    assert w.request("GET", "/api/v1/queue", purpose="emergency_response").status_code == 401
    bogus = w.request("GET", "/api/v1/calls", token="nope", purpose="emergency_response")
    assert bogus.status_code == 401 and bogus.headers["www-authenticate"].startswith("Bearer")
    entries = w.audit_entries()
    logins = [(e["actor"], e["allowed"]) for e in entries if e["action"] == "auth.login"]
    assert logins == [("det.kim", False), ("det.kim", False), ("det.kim", True), ("det.kim", True)]
    imm_entry = next(e for e in entries if e["purpose"] == "immigration_enforcement")
    assert imm_entry["actor"] == "det.kim" and "NYPD-SS-NO-IMMIGRATION" in imm_entry["rules"]
    assert imm_entry["detail"]["second_factor"] is True and imm_entry["reference"] == "in-75"
    _check_every_refusal_audited(w)


def test_console_form_sign_in_sets_a_session_cookie_and_sign_out_ends_it(world: World) -> None:
    w = world
    form = {"username": "det.kim", "password": PW, "purpose": "criminal_investigation",
            "workstation": "PCT-75-DESK-3"}  # fmt: skip
    bad = w.request("POST", "/login", data={**form, "password": "wrong"})
    assert bad.status_code == 401 and "Sign-in refused" in bad.text
    r = w.request("POST", "/login", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookies = {c.name: c.value for c in httpx.Cookies(r.cookies).jar}
    assert set(cookies) == {"sw_session", "sw_purpose"}
    assert cookies["sw_session"] not in r.text  # never echoed in a page
    page = w.request("GET", "/console/incidents/in-75", cookies=cookies)
    assert page.status_code == 200 and "det.kim" in page.text and "PCT-75-DESK-3" in page.text
    out = w.request("POST", "/logout", cookies=cookies, headers={"accept": "text/html"})
    assert out.status_code == 303
    again = w.request("GET", "/console", cookies=cookies, headers={"accept": "text/html"})
    assert again.status_code == 303 and again.headers["location"].startswith("/login")
    api = w.request("GET", "/api/v1/queue", cookies=cookies)
    assert api.status_code == 401 and "signed out" in api.json()["detail"]["detail"]
    _check_every_refusal_audited(w)


def test_transfer_ends_sessions_and_service_tokens_on_the_next_request(world: World) -> None:
    w = world
    tok = w.login("det.kim").json()["token"]
    path, purpose = "/api/v1/incidents/in-75", "criminal_investigation"
    assert w.request("GET", path, token=tok, purpose=purpose).status_code == 200
    # a service token names an identity account (det.ana of the users file): same decision
    assert w.request("GET", path, token="tok-det", purpose=purpose).status_code == 200
    w.clock.advance_by(1)
    w.srv.identity.transfer("det.kim", command="40", by="itb1")
    w.srv.identity.transfer("det.ana", command="40", by="itb1")
    r = w.request("GET", path, token=tok, purpose=purpose)
    assert r.status_code == 401 and "transferred to 40" in r.json()["detail"]["detail"]
    r = w.request("GET", path, token="tok-det", purpose=purpose)
    assert r.status_code == 403  # the account now stands in command 40, without access
    # a fresh session in the new command sees nothing either: access went with the transfer
    tok2 = w.login("det.kim").json()["token"]
    assert w.request("GET", path, token=tok2, purpose=purpose).status_code == 403
    queue = w.request("GET", "/api/v1/queue", token=tok2, purpose=purpose)
    assert queue.status_code == 403
    denied = [e for e in w.audit_entries() if not e["allowed"] and e["actor"] == "det.kim"]
    assert any("access grant" in e["reason"] for e in denied)
    _check_every_refusal_audited(w)


def test_lockout_and_expiry_take_effect_on_the_next_request(world: World) -> None:
    w = world
    tok = w.login("det.kim").json()["token"]
    path, purpose = "/api/v1/queue", "emergency_response"
    assert w.request("GET", path, token=tok, purpose=purpose).status_code == 200
    for _ in range(3):  # policy.lockout_failures = 3
        assert w.login("det.kim", password="guess").status_code == 401
    assert w.login("det.kim").status_code == 401  # locked: even the right password
    r = w.request("GET", path, token=tok, purpose=purpose)
    assert r.status_code == 401 and r.json()["detail"]["detail"] == "account locked"
    w.clock.advance_by(PolicySettings().lockout_s + 1)
    tok = w.login("det.kim").json()["token"]
    assert w.request("GET", path, token=tok, purpose=purpose).status_code == 200
    w.clock.advance_by(601)  # policy.session_idle_s = 600
    r = w.request("GET", path, token=tok, purpose=purpose)
    assert r.status_code == 401 and "idle" in r.json()["detail"]["detail"]
    _check_every_refusal_audited(w)


def test_training_withdrawn_by_a_sanction_stops_access_on_the_next_request(
    boundaries_dir: Path,
) -> None:
    sfb = load_boundaries(boundaries_dir / "sfpd-districts.geojson")
    clock = ReplayClock(T0)
    srv = build_server(DispatchSettings(mode="sfdem"), clock=clock, boundaries=sfb, channels=[])
    srv.identity.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    p = sfb.boundary("MISSION").geometry.representative_point()
    _incident(srv, "sf-1", p.y, p.x)
    w = World(srv, create_app(srv), clock)
    _person(srv, "sup.lee", SF, agency="SF-DEM", rank="public_safety_supervisor_8239",
            role="supervisor", command="DEM")  # fmt: skip
    # the policy's workstation list (no settings override): a listed one, then another
    listed = w.login("sup.lee", workstation="DEM-SUP-WS-2").json()["token"]
    other = w.login("sup.lee", workstation="DEM-DISP-7").json()["token"]
    path = "/api/v1/incidents/sf-1"
    assert w.request("GET", path, token=listed, purpose="dispatch").status_code == 200
    r = w.request("GET", path, token=other, purpose="dispatch")
    assert r.status_code == 403  # not one of the four supervisor workstations
    srv.identity.record_sanction("sup.lee", SF, by="ops.manager", note="viewed off-floor")
    r = w.request("GET", path, token=listed, purpose="dispatch")
    assert r.status_code == 403 and "acknowledged training" in r.json()["detail"]["reason"]
    srv.identity.acknowledge_training("sup.lee", SF)  # retrained and acknowledged again
    assert w.request("GET", path, token=listed, purpose="dispatch").status_code == 200
    _check_every_refusal_audited(w)


def test_openapi_documents_login_and_no_route_lacks_an_action(world: World) -> None:
    from shotwatch.policy.web import routes_without_action

    schema = world.request("GET", "/openapi.json").json()
    assert "/api/v1/login" in schema["paths"] and "post" in schema["paths"]["/login"]
    assert routes_without_action(world.app) == ["POST /api/v1/reports"]
    page = world.request("GET", "/login")
    assert page.status_code == 200 and 'name="totp"' in page.text
    assert "criminal_investigation" in page.text and "immigration" not in page.text


def test_users_cli_makes_a_service_account_the_server_decides_like_a_person(
    nypd: BoundarySet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`shotwatch users` writes the identity database; the users file row it prints only names
    the account, whose attributes the server reads at each request."""
    from shotwatch.audit.log import AuditLog
    from shotwatch.cli.main import main
    from shotwatch.core.settings import PolicySettings
    from shotwatch.policy.engine import default_engine
    from shotwatch.policy.identity import IdentityService
    from shotwatch.storage.db import make_engine

    db = f"sqlite:///{tmp_path / 'sw.db'}"
    base = ["--db", db, "--by", "itb.admin"]
    person = ["--agency", "NYPD", "--role", "investigator", "--rank", "detective", "--command"]
    assert main(["users", "add", "cad.link", *person, "75", "--no-password", *base]) == 0
    assert main(["users", "grant", "cad.link", SS, "--requested-by", "co.75", *base]) == 0
    capsys.readouterr()
    assert main(["users", "token", "cad.link", *base]) == 0
    out = capsys.readouterr()
    token = out.err.split(": ")[-1].strip()
    (tmp_path / "users.toml").write_text(out.out)
    clock = ReplayClock(T0)
    engine = make_engine(db)
    log = AuditLog(engine, clock)
    ids = IdentityService(engine, clock, PolicySettings(), default_engine().policies, audit=log)
    srv = build_server(DispatchSettings(users_file=str(tmp_path / "users.toml")), clock=clock,
                       boundaries=nypd, channels=[], identity=ids)  # fmt: skip
    p = nypd.boundary("75").geometry.representative_point()
    _incident(srv, "in-75", p.y, p.x)
    w = World(srv, create_app(srv), clock)
    path, purpose = "/api/v1/incidents/in-75", "criminal_investigation"
    r = w.request("GET", path, token=token, purpose=purpose)
    assert r.status_code == 403  # training not yet acknowledged
    assert main(["users", "acknowledge", "cad.link", SS, *base]) == 0
    assert w.request("GET", path, token=token, purpose=purpose).status_code == 200
    assert main(["users", "transfer", "cad.link", "--command", "40", *base]) == 0
    assert w.request("GET", path, token=token, purpose=purpose).status_code == 403
    assert "token" not in (tmp_path / "users.toml").read_text().replace("token_sha256", "")
    _check_every_refusal_audited(w)


def test_a_live_stream_ends_when_its_user_is_transferred(world: World) -> None:
    w = world
    tok = w.login("det.kim").json()["token"]

    async def go() -> tuple[httpx.Response, float]:
        transport = httpx.ASGITransport(app=w.app, client=ONSITE)
        async with httpx.AsyncClient(transport=transport, base_url="http://sw") as c:
            headers = {"Authorization": f"Bearer {tok}", "X-Purpose": "emergency_response"}
            stream = asyncio.create_task(c.get("/api/v1/events", headers=headers))
            await asyncio.sleep(0.3)
            assert not stream.done()  # the stream stays open while the sign-in is valid
            t0 = asyncio.get_running_loop().time()
            await asyncio.to_thread(w.srv.identity.transfer, "det.kim", command="40", by="itb")
            r = await asyncio.wait_for(stream, timeout=10)
            return r, asyncio.get_running_loop().time() - t0

    r, took_s = asyncio.run(go())
    # the transport returns once the server ends the stream: within one re-check period
    assert r.status_code == 200 and r.text.startswith(": connected")
    assert took_s < 2 * 1.0 + 0.5
