"""FastAPI glue: every route declares the action it performs, and is refused without it.

``Depends(require_action(Action.INCIDENT_VIEW))`` on a route (or in ``dependencies=[...]``)
asks the application's gate (``app.state.policy_gate``, anything with
``authorize(request, action) -> Decision``) and answers 403 with the deciding rules when
denied. :func:`routes_without_action` lists routes that declare no action, so a test can fail
on them (see ``tests/unit/test_policy_web.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fastapi import HTTPException, Request
from fastapi.routing import APIRoute

from shotwatch.policy.actions import Action, require_registered
from shotwatch.policy.engine import Decision

ACTION_ATTR = "shotwatch_action"


class PolicyGate(Protocol):
    def authorize(self, request: Request, action: Action) -> Decision: ...


def require_action(action: Action) -> Callable[[Request], Decision]:
    """A dependency that authorizes ``action`` for the request, or raises 403."""
    act = require_registered(action)

    def _dependency(request: Request) -> Decision:
        gate: PolicyGate | None = getattr(request.app.state, "policy_gate", None)
        if gate is None:
            raise HTTPException(status_code=500, detail="no policy gate configured")
        decision = gate.authorize(request, act)
        request.state.decision = decision
        if not decision.allow:
            raise HTTPException(
                status_code=403,
                detail={
                    "action": decision.action,
                    "rules": list(decision.rules),
                    "reason": decision.reason,
                },
            )
        return decision

    setattr(_dependency, ACTION_ATTR, act)
    return _dependency


def _declared(dependant: Any) -> list[Action]:
    found: list[Action] = []
    call = getattr(dependant, "call", None)
    if call is not None and hasattr(call, ACTION_ATTR):
        found.append(getattr(call, ACTION_ATTR))
    for sub in getattr(dependant, "dependencies", []):
        found.extend(_declared(sub))
    return found


def declared_actions(route: Any) -> list[Action]:
    """The actions one route declares (empty for anything that is not an API route)."""
    return _declared(route.dependant) if isinstance(route, APIRoute) else []


def route_actions(app: Any) -> dict[str, list[Action]]:
    """``"METHOD /path"`` -> the actions each API route declares."""
    out: dict[str, list[Action]] = {}
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in sorted(route.methods or []):
                out[f"{method} {route.path}"] = _declared(route.dependant)
    return out


def routes_without_action(app: Any) -> list[str]:
    """Routes that declare no action: a test should assert this list is empty."""
    return sorted(k for k, v in route_actions(app).items() if not v)


ResourceResolver = Callable[[Request, Action], Any]


class SessionPolicyGate:
    """The production gate: bearer session token -> current actor; purpose and reference from
    the ``X-ShotWatch-Purpose`` / ``X-ShotWatch-Reference`` headers; the resource from the
    application's resolver; decided and audited by the :class:`Authorizer`."""

    def __init__(self, identity: Any, authorizer: Any, resolve_resource: ResourceResolver) -> None:
        self.identity = identity
        self.authorizer = authorizer
        self.resolve_resource = resolve_resource

    def authorize(self, request: Request, action: Action) -> Decision:
        from shotwatch.policy.identity import AuthError

        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise HTTPException(status_code=401, detail="sign in first")
        try:
            actor, ctx = self.identity.actor_for_session(
                header[7:].strip(),
                purpose=request.headers.get("x-shotwatch-purpose", ""),
                reference=request.headers.get("x-shotwatch-reference", ""),
                disclosure_basis=request.headers.get("x-shotwatch-disclosure-basis", ""),
            )
        except AuthError as exc:
            raise HTTPException(status_code=401, detail=exc.reason) from exc
        request.state.actor = actor
        resource = self.resolve_resource(request, action)
        decision: Decision = self.authorizer.authorize(actor, action, resource, ctx)
        return decision


def assert_every_route_declares_action(app: Any, *, exempt: tuple[str, ...] = ()) -> None:
    """For tests: fail, naming the routes, when any API route declares no action.
    ``exempt`` lists ``"METHOD /path"`` keys that are deliberately public (keep it short)."""
    missing = [r for r in routes_without_action(app) if r not in exempt]
    if missing:
        raise AssertionError(
            "routes without a declared action (add Depends(require_action(Action.X))): "
            + ", ".join(missing)
        )
