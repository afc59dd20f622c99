"""Assemble a :class:`~shotwatch.api.app.Server` from settings (the I/O shell of ``serve``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request

from shotwatch.api.app import PulseConsumer, ReportVerifier, Server
from shotwatch.api.auth import IdentityGate, UserRegistry
from shotwatch.api.media import EvidenceIndex, EvidenceStore
from shotwatch.core.clock import Clock
from shotwatch.core.errors import InputError
from shotwatch.core.geo import LocalFrame
from shotwatch.core.settings import DispatchSettings, PolicySettings
from shotwatch.dispatch.board import EventHub
from shotwatch.dispatch.boundaries import BoundarySet, load_boundaries
from shotwatch.dispatch.channels import (
    CapChannel,
    Channel,
    EidoChannel,
    HttpSender,
    RetryPolicy,
    WebhookChannel,
)
from shotwatch.dispatch.flows import DispatchFlow, FlowStore, NullStore
from shotwatch.dispatch.modes import mode_named
from shotwatch.incidents.review import ReviewBook
from shotwatch.policy.engine import Actor, PolicyEngine, Resource, default_engine

MODE_POLICY = {"nypd": "nypd-shotspotter", "sfdem": "sf-dem-gunshot-detection"}


def http_channels(s: DispatchSettings, clock: Clock) -> list[Channel]:
    """The HTTP channels configured in settings; the secret comes from the environment."""
    urls = [u for u in (s.webhook_url, s.cap_url, s.eido_url) if u]
    if not urls:
        return []
    secret = os.environ.get(s.secret_env, "")
    if len(secret) < 16:
        raise InputError(
            "dispatch settings",
            "secret_env",
            f"${s.secret_env} must hold a secret of at least 16 characters to sign calls",
        )
    client = httpx.AsyncClient()
    retry = RetryPolicy(s.max_attempts, s.retry_base_s)

    def sender(url: str) -> HttpSender:
        return HttpSender(url, secret.encode(), clock, client, retry)

    out: list[Channel] = []
    if s.webhook_url:
        out.append(WebhookChannel(sender(s.webhook_url)))
    if s.cap_url:
        out.append(CapChannel(sender(s.cap_url), cap_sender=s.agency_id))
    if s.eido_url:
        out.append(
            EidoChannel(sender(s.eido_url), agency_id=s.agency_id, issuing_element="shotwatch")
        )
    return out


def build_server(
    s: DispatchSettings,
    *,
    clock: Clock,
    boundaries: BoundarySet | None = None,
    users: UserRegistry | None = None,
    channels: Sequence[Channel] | None = None,
    verifier: ReportVerifier | None = None,
    consumer: PulseConsumer | None = None,
    frame: LocalFrame | None = None,
    store: FlowStore | None = None,
    engine: PolicyEngine | None = None,
    identity: Any = None,
    audit_log: Any = None,
    policy_settings: PolicySettings | None = None,
    evidence_store: EvidenceStore | None = None,
) -> Server:
    """The server. People and service accounts are those of ``identity`` (an
    :class:`~shotwatch.policy.identity.IdentityService`) and every decision goes to
    ``audit_log`` (default: the identity service's). Without an identity service (tests,
    benches) a private one is created in a temporary SQLite database, with its own audit log;
    accounts of the users file that carry attributes are created in it."""
    engine = engine or default_engine()
    if identity is None:
        identity, own_log = ephemeral_identity(clock, engine, policy_settings or PolicySettings())
        audit_log = audit_log or own_log
    audit_log = audit_log or identity.audit
    if audit_log is None:
        raise InputError("server", "audit_log", "an audit log is required")
    if boundaries is None:
        if not s.boundaries_file:
            raise InputError("dispatch settings", "boundaries_file", "required to route calls")
        boundaries = load_boundaries(Path(s.boundaries_file), max_snap_m=s.max_snap_m)
    if users is None:
        users = UserRegistry.from_toml(s.users_file) if s.users_file else UserRegistry()
    users.provision(identity)
    policy_id = s.policy_id or MODE_POLICY.get(s.mode, "")
    pol = engine.policy(policy_id)
    # the supervisor workstations are the policy's list unless the settings narrow it
    listed = tuple(s.supervisor_workstations) or (tuple(pol.workstations) if pol else ())
    mode = mode_named(s.mode, listed)
    flow = DispatchFlow(
        ReviewBook(frame),
        boundaries,
        mode,
        list(channels) if channels is not None else http_channels(s, clock),
        clock,
        EventHub(),
        store or NullStore(),
    )
    holder: dict[str, Server] = {}

    def resource_for(request: Request, actor: Actor) -> Resource:
        iid = request.path_params.get("incident_id")
        srv = holder["server"]
        if iid:
            kind = "incident_audio" if "/audio/" in request.url.path else "incident"
            return srv.incident_resource(iid, kind)
        return Resource("collection", policy_id, "collection", actor.command)

    gate = IdentityGate(
        engine, policy_id, identity, clock, resource_for, audit=audit_log, services=users
    )
    server = Server(
        flow=flow,
        gate=gate,
        users=users,
        identity=identity,
        audit=audit_sink(audit_log),
        evidence=EvidenceIndex(frame=frame, store=evidence_store),
        max_report_bytes=s.max_report_bytes,
    )
    if verifier is not None:
        server.verifier = verifier
    server.consumer = consumer
    holder["server"] = server
    return server


def ephemeral_identity(
    clock: Clock, engine: PolicyEngine, settings: PolicySettings
) -> tuple[Any, Any]:
    """An identity service and audit log in a fresh SQLite database under the temporary
    folder (removed at exit): for tests, benches and the demo."""
    import atexit
    import shutil
    import tempfile

    from shotwatch.audit.log import AuditLog
    from shotwatch.policy.identity import IdentityService
    from shotwatch.storage.db import make_engine, migrate

    folder = tempfile.mkdtemp(prefix="shotwatch-identity-")
    atexit.register(shutil.rmtree, folder, True)
    url = f"sqlite:///{folder}/identity.db"
    migrate(url)
    db = make_engine(url)
    log = AuditLog(db, clock)
    return IdentityService(db, clock, settings, engine.policies, audit=log), log


def audit_sink(log: Any) -> Callable[[str, dict[str, Any]], None]:
    """Adapt the audit log (``shotwatch.audit.log.AuditLog``) to the server's audit events:
    refused sensor reports, review commands, CAD entries and sign-ins."""
    spec = {
        "report.rejected": ("sensor.report", "denied", False),
        "review.command": ("incident.change", "change", True),
        "dispatch.cad": ("incident.dispatch", "change", True),
        "auth.login": ("auth.login", "login", True),
    }

    def sink(kind: str, data: dict[str, Any]) -> None:
        action, audit_kind, allowed = spec.get(kind, (kind, "change", True))
        if kind == "auth.login":
            allowed = bool(data.get("ok"))
            audit_kind = "login" if allowed else "denied"
        actor = str(
            data.get("user")
            or (f"sensor:{data['serial']}" if data.get("serial") else "unauthenticated")
        )
        log.append(
            actor=actor,
            action=action,
            kind=audit_kind,
            allowed=allowed,
            item=str(data.get("incident_id") or data.get("serial") or ""),
            reason=str(data.get("reason") or data.get("detail") or ""),
            detail={
                k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
                for k, v in data.items()
            },
        )

    return sink
