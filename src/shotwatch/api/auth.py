"""Who is asking, and may they: API tokens -> :class:`~shotwatch.policy.engine.Actor`, and the
policy gate every route asks (``app.state.policy_gate``).

Users are configured in a TOML file (``[[user]]`` tables; only the SHA-256 of each token is
stored). A request authenticates with ``Authorization: Bearer <token>`` or, in the browser,
the HttpOnly ``sw_token`` cookie set by ``/login``. The articulable need the policies demand
travels as the purpose (``X-Purpose`` header or ``sw_purpose`` cookie, chosen at login) and
the reference (the incident the route names, else ``X-Reference``); the workstation as
``X-Workstation`` / ``sw_workstation`` (ADR 0092).

The resource of a decision is the incident the route names (its command is the unit the
incident routes to, its age runs from arrival, ``entered_in_cad`` says whether its call is in
CAD) or, for collection routes, the actor's own command; list routes then filter each item
with :meth:`EngineGate.can_view`.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import Request

from shotwatch.core.clock import Clock
from shotwatch.core.errors import InputError
from shotwatch.policy.actions import Action
from shotwatch.policy.engine import Actor, Context, Decision, PolicyEngine, Resource

TOKEN_COOKIE = "sw_token"
CACHE_TTL_S = 1.0
PURPOSE_COOKIE = "sw_purpose"
WORKSTATION_COOKIE = "sw_workstation"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    actor: Actor
    token_sha256: str
    second_factor: bool = False
    display: str = ""


class UserRegistry:
    def __init__(self, users: Iterable[User] = ()) -> None:
        self._by_digest: dict[str, User] = {}
        for u in users:
            self.add(u)

    def add(self, user: User) -> None:
        self._by_digest[user.token_sha256] = user

    def by_token(self, token: str | None) -> User | None:
        if not token:
            return None
        d = token_digest(token)
        for k, u in self._by_digest.items():  # constant-time comparison per entry
            if hmac.compare_digest(k, d):
                return u
        return None

    @classmethod
    def from_toml(cls, path: str | Path) -> UserRegistry:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(str(p), "file", "not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InputError(str(p), "file", f"not valid TOML: {exc}") from exc
        return cls.from_dicts(data.get("user", []), where=str(p))

    @classmethod
    def from_dicts(cls, rows: Iterable[dict[str, Any]], where: str = "users") -> UserRegistry:
        reg = cls()
        for i, row in enumerate(rows):
            w = f"{where} user[{i}]"
            digest = row.get("token_sha256") or (
                token_digest(row["token"]) if row.get("token") else None
            )
            if not digest:
                raise InputError(w, "token_sha256", "each user needs a token or its SHA-256")
            for f in ("user_id", "agency", "role", "rank"):
                if not row.get(f):
                    raise InputError(w, f, "required")
            actor = Actor(
                user_id=row["user_id"],
                agency=row["agency"],
                role=row["role"],
                rank=row["rank"],
                command=str(row.get("command", "")),
                bureau=row.get("bureau", ""),
                active=bool(row.get("active", True)),
                access=frozenset(row.get("access", [])),
                trained=frozenset(row.get("trained", [])),
            )
            reg.add(
                User(actor, digest, bool(row.get("second_factor", False)), row.get("display", ""))
            )
        return reg


def request_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(TOKEN_COOKIE)


def request_value(request: Request, header: str, cookie: str) -> str:
    return request.headers.get(header) or request.cookies.get(cookie) or ""


ResourceFor = Callable[[Request, Actor], Resource]


class EngineGate:
    """The :class:`shotwatch.policy.web.PolicyGate` of the server: asks the policy engine."""

    def __init__(
        self,
        engine: PolicyEngine,
        policy_id: str,
        users: UserRegistry,
        clock: Clock,
        resource_for: ResourceFor,
    ) -> None:
        if engine.policy(policy_id) is None:
            raise InputError("dispatch settings", "policy_id", f"no policy {policy_id!r}")
        self.engine = engine
        self.policy_id = policy_id
        self.users = users
        self.clock = clock
        self.resource_for = resource_for
        self.audit: Any = None  # an AuditLog: every route decision is appended when set
        self._cache: dict[tuple[Any, ...], tuple[bool, float]] = {}

    def user(self, request: Request) -> User | None:
        return self.users.by_token(request_token(request))

    def context(self, request: Request, reference: str = "") -> Context:
        user = self.user(request)
        return Context(
            now_s=self.clock.now(),
            purpose=request_value(request, "x-purpose", PURPOSE_COOKIE),
            reference=reference or request.headers.get("x-reference", ""),
            remote=request.headers.get("x-remote", "") == "1",
            second_factor=bool(user and user.second_factor),
            workstation=request_value(request, "x-workstation", WORKSTATION_COOKIE),
        )

    def authorize(self, request: Request, action: Action) -> Decision:
        user = self.user(request)
        if user is None:
            return Decision(False, (), "not signed in", action.spec.value, self.policy_id)
        resource = self.resource_for(request, user.actor)
        ctx = self.context(request, resource.resource_id if resource.kind != "collection" else "")
        if resource.kind == "collection":
            # a list: the items are filtered one by one; here only ask whether the actor may
            # see such data at all (an item of their own command)
            resource = Resource(
                f"any:{user.actor.command}",
                self.policy_id,
                "incident",
                user.actor.command,
                created_at_s=ctx.now_s,
                attrs={"entered_in_cad": True},
            )
            ctx = replace(ctx, reference=ctx.reference or "queue")
        decision = self.engine.decide(user.actor, action, resource, ctx)
        if self.audit is not None:
            self.audit.append(
                actor=user.actor.user_id,
                action=action.spec.value,
                kind=action.spec.audit.value if decision.allow else "denied",
                allowed=decision.allow,
                item=resource.resource_id,
                purpose=ctx.purpose,
                reference=ctx.reference,
                rules=decision.rules,
                reason=decision.reason,
                policy=decision.policy,
                detail={"path": request.url.path, "method": request.method},
            )
        return decision

    def can(self, request: Request, action: Action, resource: Resource) -> bool:
        """Item-level check for lists and live events. Decisions depend on the actor's
        attributes, never on the user id (no compiled rule names a principal), so identical
        consoles share one cached decision for up to ``CACHE_TTL_S`` (ADR 0092)."""
        user = self.user(request)
        if user is None:
            return False
        ctx = self.context(request, resource.resource_id)
        a = user.actor
        key = (
            a.agency,
            a.role,
            a.rank,
            a.command,
            a.bureau,
            a.active,
            a.access,
            a.trained,
            action,
            resource.resource_id,
            resource.kind,
            resource.command,
            resource.created_at_s,
            resource.flags,
            tuple(sorted(resource.attrs.items())),
            ctx.purpose,
            ctx.reference,
            ctx.remote,
            ctx.second_factor,
            ctx.workstation,
        )
        hit = self._cache.get(key)
        if hit is not None and hit[1] > ctx.now_s:
            return hit[0]
        allow = self.engine.decide(a, action, resource, ctx).allow
        if len(self._cache) > 20_000:
            self._cache.clear()
        self._cache[key] = (allow, ctx.now_s + CACHE_TTL_S)
        return allow
