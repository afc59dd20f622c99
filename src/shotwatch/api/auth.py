"""Who is asking, and may they: the server's policy gate (``app.state.policy_gate``).

Every request is authenticated against the identity service
(:class:`shotwatch.policy.identity.IdentityService`) *at that request*:

* people sign in at ``/login`` (console form) or ``POST /api/v1/login`` (JSON) with their
  password, plus a TOTP code when they sign in from outside the policy's internal networks.
  The identity service issues a session token; the browser keeps it in the HttpOnly
  ``sw_session`` cookie, API clients send ``Authorization: Bearer <token>``. Each request
  rebuilds the actor from the database (``actor_for_session``), so a transfer, a lockout or
  deactivation, an expired or revoked session, a withdrawn training acknowledgment or a
  changed role takes effect on the next request;
* machine clients (e.g. a CAD integration) may hold a service token from the users file
  (:class:`UserRegistry`). A token only names an identity-service account: the account's
  attributes, grants and training are read from the identity service at every request, and
  the request is decided by the same ``decide()`` and audited like any other.

The articulable need travels as the purpose (``X-Purpose`` header, or the ``sw_purpose``
cookie chosen at sign-in) and the reference (the incident the route names, else
``X-Reference``). The workstation is the one declared at sign-in (kept in the session) or
fixed for a service account; a request cannot change it. Remote or not comes from the
connection's address, never from a header.

Every decision, allowed or denied, and every refused authentication (401) is appended to the
audit log (ADR 0095).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from shotwatch.core.clock import Clock
from shotwatch.core.errors import InputError
from shotwatch.policy.actions import Action
from shotwatch.policy.engine import Actor, Context, Decision, PolicyEngine, Resource

SESSION_COOKIE = "sw_session"
PURPOSE_COOKIE = "sw_purpose"
CACHE_TTL_S = 1.0
STREAM_RECHECK_S = 1.0  # a live stream looks for identity changes this often...
STREAM_FULL_RECHECK_S = 10.0  # ...and re-reads its user regardless this often
UNAUTHENTICATED = "unauthenticated"
_UNSET = object()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ServiceAccount:
    """A service token (only its SHA-256 is kept) and the identity-service account it names.

    ``provision`` holds the account's attributes when the users file may create it (first
    start of a development or test server); the identity service stays the source of truth
    afterwards. ``workstation`` is fixed for the token; ``second_factor`` says whether the
    token is itself bound to a second factor (e.g. a client certificate checked upstream)."""

    user_id: str
    token_sha256: str
    second_factor: bool = False
    workstation: str = ""
    display: str = ""
    provision: Actor | None = None


class UserRegistry:
    """Service tokens -> identity-service accounts (``[[user]]`` tables of the users file)."""

    def __init__(self, accounts: Iterable[ServiceAccount] = ()) -> None:
        self._by_digest: dict[str, ServiceAccount] = {}
        for a in accounts:
            self.add(a)

    def add(self, account: ServiceAccount) -> None:
        self._by_digest[account.token_sha256] = account

    def __iter__(self) -> Any:
        return iter(list(self._by_digest.values()))

    def __len__(self) -> int:
        return len(self._by_digest)

    def by_token(self, token: str | None) -> ServiceAccount | None:
        if not token:
            return None
        d = token_digest(token)
        found = None
        for k, a in self._by_digest.items():  # constant-time comparison per entry
            if hmac.compare_digest(k, d):
                found = a
        return found

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
        """Each row: ``user_id`` and ``token`` or ``token_sha256``; optionally ``workstation``,
        ``second_factor``, ``display``, and the attributes to create the account with
        (``agency``, ``role``, ``rank``, ``command``, ``bureau``, ``access``, ``trained``)."""
        reg = cls()
        for i, row in enumerate(rows):
            w = f"{where} user[{i}]"
            digest = row.get("token_sha256") or (
                token_digest(row["token"]) if row.get("token") else None
            )
            if not digest:
                raise InputError(w, "token_sha256", "each user needs a token or its SHA-256")
            if not row.get("user_id"):
                raise InputError(w, "user_id", "required")
            spec = None
            if any(row.get(f) for f in ("agency", "role", "rank")):
                for f in ("agency", "role", "rank"):
                    if not row.get(f):
                        raise InputError(w, f, "required to create the account")
                spec = Actor(
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
                ServiceAccount(
                    user_id=row["user_id"],
                    token_sha256=digest,
                    second_factor=bool(row.get("second_factor", False)),
                    workstation=str(row.get("workstation", "")),
                    display=row.get("display", ""),
                    provision=spec,
                )
            )
        return reg

    def provision(self, identity: Any, *, source: str = "users-file") -> list[str]:
        """Create the accounts that carry attributes and do not exist yet (grants and
        training acknowledgments included, audited by the identity service); returns the
        ids created. Existing accounts are left as the identity service has them."""
        from shotwatch.policy.tables import UserRow

        made = []
        for a in self:
            spec = a.provision
            if spec is None:
                continue
            with identity._session() as s:
                if s.get(UserRow, a.user_id) is not None:
                    continue
            identity.create_user(
                user_id=a.user_id,
                username=a.user_id,
                agency=spec.agency,
                rank=spec.rank,
                role=spec.role,
                command=spec.command,
                bureau=spec.bureau,
                display_name=a.display,
                created_by=source,
            )
            for pid in sorted(spec.access):
                identity.grant_access(
                    a.user_id, pid, requested_by=source, approved_by=f"{source}:approved"
                )
            for pid in sorted(spec.trained):
                identity.acknowledge_training(a.user_id, pid)
            if not spec.active:
                identity.deactivate(a.user_id, by=source, reason="inactive in the users file")
            made.append(a.user_id)
        return made


@dataclass(frozen=True)
class Principal:
    """The authenticated caller as they stand now: actor, network situation, how they
    authenticated and the session's workstation."""

    actor: Actor
    remote: bool
    second_factor: bool
    workstation: str
    via: str  # "session" | "service"
    resolved_at: float  # time.monotonic() when read from the identity service


def request_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE) or None


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def request_purpose(request: Request) -> str:
    return (
        request.headers.get("x-purpose")
        or request.headers.get("x-shotwatch-purpose")
        or request.cookies.get(PURPOSE_COOKIE)
        or ""
    )


ResourceFor = Callable[[Request, Actor], Resource]


class IdentityGate:
    """The :class:`shotwatch.policy.web.PolicyGate` of the server: the identity service says
    who is asking, the policy engine decides, the audit log records."""

    def __init__(
        self,
        engine: PolicyEngine,
        policy_id: str,
        identity: Any,
        clock: Clock,
        resource_for: ResourceFor,
        *,
        audit: Any,
        services: UserRegistry | None = None,
    ) -> None:
        if engine.policy(policy_id) is None:
            raise InputError("dispatch settings", "policy_id", f"no policy {policy_id!r}")
        self.engine = engine
        self.policy_id = policy_id
        self.identity = identity
        self.clock = clock
        self.resource_for = resource_for
        self.audit = audit  # an AuditLog: every decision and refusal is appended
        self.services = services or UserRegistry()
        self._cache: dict[tuple[Any, ...], tuple[bool, float]] = {}

    # ---- authentication ------------------------------------------------------------------

    def _resolve(self, request: Request) -> tuple[Principal | None, str]:
        from shotwatch.policy.identity import AuthError

        token = request_token(request)
        if token is None:
            return None, "not signed in"
        account = self.services.by_token(token)
        if account is not None:
            try:
                actor = self.identity.actor_by_id(account.user_id)
            except InputError:
                return None, f"service account {account.user_id!r} does not exist"
            if not actor.active:
                return None, "account inactive"
            return Principal(
                actor,
                self.identity.is_remote(client_address(request)),
                account.second_factor,
                account.workstation,
                "service",
                time.monotonic(),
            ), ""
        try:
            actor, ctx = self.identity.actor_for_session(token)
        except AuthError as exc:
            return None, exc.reason
        return Principal(
            actor, ctx.remote, ctx.second_factor, ctx.workstation, "session", time.monotonic()
        ), ""

    def principal(self, request: Request) -> Principal | None:
        """The caller, read from the identity service once per request."""
        cached = getattr(request.state, "principal", _UNSET)
        if cached is not _UNSET:
            return cached if isinstance(cached, Principal) else None
        return self.refresh(request)

    def refresh(self, request: Request) -> Principal | None:
        """Read the caller from the identity service again (a live stream does this every
        ``STREAM_RECHECK_S``)."""
        p, why = self._resolve(request)
        request.state.principal = p
        request.state.auth_error = why
        return p

    def stream_due(self, state: dict[str, float]) -> bool:
        """For a live stream, checked every ``STREAM_RECHECK_S`` on the event loop (no I/O):
        whether to re-read the caller now, i.e. this process's identity service changed
        anything since the last reading (a transfer, lockout, sign-out, grant or training
        change: ``IdentityService.epoch``), or ``STREAM_FULL_RECHECK_S`` passed (expiry, and
        changes made by other processes)."""
        epoch = float(getattr(self.identity, "epoch", 0))
        now = time.monotonic()
        if state.get("epoch") == epoch and now - state.get("at", 0.0) < STREAM_FULL_RECHECK_S:
            return False
        state["epoch"], state["at"] = epoch, now
        return True

    def user(self, request: Request) -> Principal | None:
        return self.principal(request)

    def refuse(self, request: Request, action: Action, why: str) -> HTTPException:
        """401 for a request with no valid sign-in, recorded in the audit log."""
        token = request_token(request)
        self.audit.append(
            actor=UNAUTHENTICATED,
            action=action.spec.value,
            kind="denied",
            allowed=False,
            item=str(request.path_params.get("incident_id", "")),
            purpose=request_purpose(request),
            reason=why,
            policy=self.policy_id,
            detail={
                "path": request.url.path,
                "method": request.method,
                "address": client_address(request),
                # which credential failed, without keeping the credential
                "token_sha256_prefix": token_digest(token)[:16] if token else "",
            },
        )
        return HTTPException(
            401,
            {"reason": "not signed in", "detail": why, "login": "/login"},
            headers={"WWW-Authenticate": 'Bearer realm="shotwatch"'},
        )

    # ---- authorization -------------------------------------------------------------------

    def context(self, request: Request, p: Principal, reference: str = "") -> Context:
        return Context(
            now_s=self.clock.now(),
            purpose=request_purpose(request),
            reference=reference or request.headers.get("x-reference", ""),
            remote=p.remote,
            second_factor=p.second_factor,
            workstation=p.workstation,
        )

    def authorize(self, request: Request, action: Action) -> Decision:
        p = self.principal(request)
        if p is None:
            raise self.refuse(request, action, getattr(request.state, "auth_error", ""))
        resource = self.resource_for(request, p.actor)
        ref = resource.resource_id if resource.kind != "collection" else ""
        ctx = self.context(request, p, ref)
        if resource.kind == "collection":
            # a list: the items are filtered one by one; here only ask whether the actor may
            # see such data at all (an item of their own command)
            resource = Resource(
                f"any:{p.actor.command}",
                self.policy_id,
                "incident",
                p.actor.command,
                created_at_s=ctx.now_s,
                attrs={"entered_in_cad": True},
            )
            ctx = replace(ctx, reference=ctx.reference or "queue")
        decision = self.engine.decide(p.actor, action, resource, ctx)
        self.audit.append(
            actor=p.actor.user_id,
            action=action.spec.value,
            kind=action.spec.audit.value if decision.allow else "denied",
            allowed=decision.allow,
            item=resource.resource_id,
            purpose=ctx.purpose,
            reference=ctx.reference,
            rules=decision.rules,
            reason=decision.reason,
            policy=decision.policy,
            detail={
                "path": request.url.path,
                "method": request.method,
                "via": p.via,
                "remote": p.remote,
                "second_factor": p.second_factor,
                "workstation": p.workstation,
            },
        )
        return decision

    def can(self, request: Request, action: Action, resource: Resource) -> bool:
        """Item-level check for lists and live events. Decisions depend on the actor's
        attributes, never on the user id (no compiled rule names a principal), so identical
        consoles share one cached decision for up to ``CACHE_TTL_S`` (ADR 0092). A live stream
        refreshes its caller every ``STREAM_RECHECK_S`` (:meth:`refresh`)."""
        p = self.principal(request)
        if p is None:
            return False
        ctx = self.context(request, p, resource.resource_id)
        a = p.actor
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
