from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from shotwatch.policy.actions import Action
from shotwatch.policy.engine import Actor, Context, Decision, Resource, default_engine
from shotwatch.policy.web import (
    assert_every_route_declares_action,
    require_action,
    routes_without_action,
)

SS = "nypd-shotspotter"


class HeaderGate:
    """Test gate: the actor's command comes from a header; the resource is fixed."""

    def authorize(self, request: Request, action: Action) -> Decision:
        actor = Actor(
            "u1",
            "NYPD",
            "investigator",
            "detective",
            request.headers["x-command"],
            access=frozenset({SS}),
            trained=frozenset({SS}),
        )
        res = Resource("inc-1", SS, "incident", "pct-75", created_at_s=0.0)
        ctx = Context(10.0, purpose="criminal_investigation", reference="I-1")
        return default_engine().decide(actor, action, res, ctx)


def make_app() -> FastAPI:
    app = FastAPI()
    app.state.policy_gate = HeaderGate()

    @app.get("/incidents/{iid}", dependencies=[Depends(require_action(Action.INCIDENT_VIEW))])
    def view(iid: str) -> dict[str, str]:
        return {"id": iid}

    return app


def _get(app: FastAPI, path: str, command: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path, headers={"x-command": command})

    return asyncio.run(go())


def test_route_decides_through_the_policy() -> None:
    app = make_app()
    assert _get(app, "/incidents/1", "pct-75").status_code == 200
    denied = _get(app, "/incidents/1", "pct-40")
    assert denied.status_code == 403
    assert denied.json()["detail"]["action"] == "incident.view"


def test_route_without_action_is_reported() -> None:
    app = make_app()
    assert routes_without_action(app) == []

    @app.get("/leaky")
    def leaky() -> dict[str, str]:
        return {}

    assert routes_without_action(app) == ["GET /leaky"]
    with pytest.raises(AssertionError, match="GET /leaky"):
        assert_every_route_declares_action(app)
    assert_every_route_declares_action(app, exempt=("GET /leaky",))
