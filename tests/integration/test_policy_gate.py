"""A FastAPI app wired as production would be: session token -> current actor -> decide ->
audit, on every route."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from argon2 import PasswordHasher
from fastapi import Depends, FastAPI, Request

from shotwatch.audit.log import AuditLog
from shotwatch.cli.main import main
from shotwatch.core.clock import ReplayClock
from shotwatch.core.settings import PolicySettings
from shotwatch.policy.actions import Action
from shotwatch.policy.engine import Resource, default_engine
from shotwatch.policy.identity import IdentityService
from shotwatch.policy.service import Authorizer
from shotwatch.policy.web import SessionPolicyGate, require_action, routes_without_action
from shotwatch.storage.db import make_engine, migrate

SS = "nypd-shotspotter"


def test_gate_decides_and_audits_every_request(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    migrate(url)
    engine = make_engine(url)
    clock = ReplayClock(1_800_000_000.0)
    audit = AuditLog(engine, clock)
    ids = IdentityService(
        engine,
        clock,
        PolicySettings(),
        default_engine().policies,
        audit=audit,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    ids.create_user(
        user_id="d1",
        username="d1",
        agency="NYPD",
        rank="detective",
        role="investigator",
        command="pct-75",
        password="pw-123456",
    )
    ids.grant_access("d1", SS, requested_by="co", approved_by="itb")
    ids.acknowledge_training("d1", SS)
    token = ids.login("d1", "pw-123456", address="127.0.0.1").token

    def resolve(request: Request, action: Action) -> Resource:
        iid = request.path_params["iid"]
        command = "pct-75" if iid.startswith("75") else "pct-40"
        return Resource(iid, SS, "incident", command, created_at_s=clock.now() - 60)

    app = FastAPI()
    app.state.policy_gate = SessionPolicyGate(ids, Authorizer(default_engine(), audit), resolve)

    @app.get("/incidents/{iid}", dependencies=[Depends(require_action(Action.INCIDENT_VIEW))])
    def view(iid: str) -> dict[str, str]:
        return {"id": iid}

    assert routes_without_action(app) == []

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            need = {
                "authorization": f"Bearer {token}",
                "x-shotwatch-purpose": "criminal_investigation",
                "x-shotwatch-reference": "C-17",
            }
            return [
                (await c.get("/incidents/75-1", headers=need)).status_code,
                (await c.get("/incidents/40-1", headers=need)).status_code,  # other command
                (
                    await c.get("/incidents/75-1", headers={"authorization": f"Bearer {token}"})
                ).status_code,
                (await c.get("/incidents/75-1")).status_code,
                (
                    await c.get(
                        "/incidents/75-1",
                        headers={**need, "x-shotwatch-purpose": "immigration_enforcement"},
                    )
                ).status_code,
            ]

    assert asyncio.run(calls()) == [200, 403, 403, 401, 403]
    views = [e for e in audit.query(actor="d1") if e["action"] == "incident.view"]
    assert [e["allowed"] for e in views] == [True, False, False, False]
    assert views[0]["purpose"] == "criminal_investigation" and views[0]["reference"] == "C-17"
    assert views[0]["rules"] == ["NYPD-SS-ACCESS"]
    assert "NYPD-SS-NO-IMMIGRATION" in views[3]["rules"]


def test_policy_check_and_cedar_cli(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["policy", "check"]) == 0
    out = capsys.readouterr().out
    assert "sf-dem-gunshot-detection" in out and "nypd-shotspotter" in out
    assert main(["policy", "cedar"]) == 0
    cedar = capsys.readouterr().out
    assert "forbid(principal" in cedar and "NYPD-SS-NO-IMMIGRATION" in cedar
