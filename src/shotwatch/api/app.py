"""The ShotWatch web application: sensor report ingest, review console, dispatch board.

Thin views (STYLE.md §6): each route parses input, has the policy gate decide its declared
action (``require_action``), calls one flow/service function and returns a schema or a page.
JSON API under ``/api/v1`` (OpenAPI at ``/openapi.json``, docs at ``/docs``); browser pages
(Jinja + HTMX, Leaflet served from the package, no CDN, no online tiles) at ``/console``,
``/board`` and ``/officer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shotwatch.api.auth import (
    PURPOSE_COOKIE,
    SESSION_COOKIE,
    STREAM_RECHECK_S,
    IdentityGate,
    UserRegistry,
    client_address,
    request_purpose,
    request_token,
)
from shotwatch.api.media import (
    AudioClip,
    EvidenceIndex,
    spectrogram_png,
    wav_bytes,
    waveform_png,
)
from shotwatch.core.errors import InputError
from shotwatch.core.model import Incident, Pulse, ShotLocation, iso_utc
from shotwatch.dispatch.flows import DispatchFlow, incident_dict, queue_item, version_dict
from shotwatch.dispatch.models import CallStatus
from shotwatch.dispatch.modes import Role
from shotwatch.incidents.review import Record, make_command
from shotwatch.policy.actions import Action
from shotwatch.policy.engine import Actor, Resource
from shotwatch.policy.web import declared_actions, require_action

HERE = Path(__file__).parent
MAX_REPORT_BYTES_DEFAULT = 393_216


class PulseConsumer(Protocol):
    """The running pipeline: a verified pulse in, any shots and incidents it completes out."""

    def feed(self, pulse: Pulse) -> tuple[Sequence[ShotLocation], Sequence[Incident]]: ...


class ReportVerifier(Protocol):
    """The sensor branch's ``Ingest.verify_report``: bytes -> VerifiedReport | Rejection."""

    def verify_report(self, data: bytes, *, received_s: float | None = None) -> Any: ...


class RejectAllVerifier:
    """No sensor registry configured: nothing can be verified, so nothing is accepted."""

    def verify_report(self, data: bytes, *, received_s: float | None = None) -> Any:
        raise InputError("report", "signature", "no sensor registry is configured on this server")


@dataclass
class Server:
    flow: DispatchFlow
    gate: IdentityGate
    users: UserRegistry
    identity: Any = None  # the IdentityService people sign in with
    demo_hint: str = ""  # shown on every page of a demo server (how to sign in)
    evidence: EvidenceIndex = field(default_factory=EvidenceIndex)
    verifier: ReportVerifier = field(default_factory=RejectAllVerifier)
    consumer: PulseConsumer | None = None
    max_report_bytes: int = MAX_REPORT_BYTES_DEFAULT
    title: str = "ShotWatch"
    audit: Callable[[str, dict[str, Any]], None] | None = None
    classify: bool = False  # score incidents from their audio as they arrive
    startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    # The event loop hands the interpreter lock to the database writer threads at every
    # socket write and signature check; with CPython's default 5 ms switch interval it may
    # wait that long to get it back, per call. While the app runs the interval is cut so the
    # loop waits at most this long (ADR 0108); None leaves the interpreter's setting alone.
    switch_interval_s: float | None = 0.0005
    # Everything the server keeps (evidence, review book, pipeline state) is long-lived and
    # mostly acyclic, but each full collection of the cyclic GC walks all of it, stopping the
    # loop: 150-170 ms two minutes into the NYE replay's busiest hour, growing with the heap.
    # Every this many seconds the objects alive are moved out of the collector's sight
    # (gc.freeze, ADR 0110); None never does.
    gc_freeze_every_s: float | None = 30.0
    scoring: Any = None  # api.classify.ScoringQueue, made on first use (or given)
    pipeline_errors: list[str] = field(default_factory=list)  # faults of consumer.feed
    wire_cache: dict[int, tuple[Resource | None, bytes]] = field(default_factory=dict)

    def _scoring(self) -> Any:
        if self.scoring is None:
            from shotwatch.api.classify import ScoringQueue

            self.scoring = ScoringQueue(self.flow.ingest)
        return self.scoring

    async def warm(self) -> None:
        """Start-up: with ``classify`` on, start the scoring workers before reports arrive."""
        if self.classify:
            await self._scoring().warm()

    async def settle(self) -> None:
        """Wait for incidents still being scored (tests, shutdown)."""
        if self.scoring is not None:
            await self.scoring.settle()

    def close(self) -> None:
        """Shutdown: stop the scoring workers and flush the store if it buffers writes."""
        if self.scoring is not None:
            self.scoring.close()
        close_consumer = getattr(self.consumer, "close", None)
        if callable(close_consumer):
            close_consumer()
        close = getattr(self.flow.store, "close", None)
        if callable(close):
            close()
        close_evidence = getattr(self.evidence.store, "close", None)
        if callable(close_evidence):
            close_evidence()

    def ingest_verified(self, result: Any) -> list[str]:
        """A verified sensor message (HTTPS or MQTT): a REPORT becomes a pulse (and its audio
        evidence) fed to the pipeline; returns the incidents it completed."""
        if str(result.kind) != "report":
            return []
        pulse = result.pulse()
        audio = result.audio()
        clip = None
        if audio is not None:
            samples, rate = audio
            clip = AudioClip(pulse.sensor, pulse.t_s - len(samples) / rate / 2, rate, samples)
        self.evidence.add_pulse(pulse, clip)
        if self.consumer is None:
            return []
        try:
            results = self.consumer.feed(pulse)
        except Exception as exc:
            # The report is accepted and its pulse kept as evidence; a retry would only be a
            # duplicate. So a fault in the pipeline is recorded where operators look (the
            # audit trail and `pipeline_errors`), never turned into a lost report.
            self.pipeline_errors.append(f"{pulse.pulse_id}: {exc!r}")
            del self.pipeline_errors[:-1000]
            if self.audit is not None:
                self.audit("pipeline.failed", {"pulse_id": pulse.pulse_id, "error": repr(exc)})
            return []
        return self.accept(*results)

    def accept(self, shots: Sequence[ShotLocation], incidents: Sequence[Incident]) -> list[str]:
        """Results of the pipeline: shots to the evidence, incidents to the review queue.
        With ``classify`` on and an event loop running, each incident is scored from its
        audio in a worker process first (the loop keeps serving consoles meanwhile) and enters
        the queue when scored, in the pipeline's order (ADR 0098)."""
        for s in shots:
            self.evidence.add_shot(s)
        for machine in incidents:
            if not self.classify:
                self.flow.ingest(machine)
                continue
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                from shotwatch.api.classify import classify_incident

                self.flow.ingest(classify_incident(machine, self.evidence))
            else:
                self._scoring().submit(machine, self.evidence)
        return [inc.incident_id for inc in incidents]

    def incident_resource(self, incident_id: str, kind: str = "incident") -> Resource:
        rec = self.flow.book.records.get(incident_id)
        if rec is None:
            return Resource(incident_id, self.gate.policy_id, kind, "", None)
        inc = rec.current.incident
        command = ""
        if inc.lat_deg is not None and inc.lon_deg is not None:
            command = self.flow.boundaries.route(inc.lat_deg, inc.lon_deg).unit_id or ""
        call = self.flow.calls.get(incident_id)
        return Resource(
            incident_id,
            self.gate.policy_id,
            kind,
            command,
            created_at_s=rec.arrival_s,
            attrs={"entered_in_cad": call is not None and call.status is CallStatus.IN_CAD},
        )

    def role_of(self, actor: Actor) -> Role:
        try:
            return Role(actor.role)
        except ValueError:
            return (
                Role.ANALYST if actor.role in ("investigator", "vendor_analyst") else (Role.OFFICER)
            )


# --- schemas -----------------------------------------------------------------------------


class ReviewCommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="Why (required).")
    params: dict[str, Any] = Field(default_factory=dict, description="Command parameters.")


class OutcomeOut(BaseModel):
    ok: bool
    outcome: str
    command: str
    incident_id: str
    reason: str
    version: int | None
    call: dict[str, Any] | None = None


class ReportAccepted(BaseModel):
    status: str
    serial: str | None = None
    seq: int | None = None
    incidents: list[str] = Field(default_factory=list)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)
    totp: str = Field(
        "", max_length=12, description="TOTP code; required when signing in remotely."
    )
    workstation: str = Field("", max_length=100, description="Workstation signing in from.")


class LoginOut(BaseModel):
    token: str = Field(description="Session token: send as 'Authorization: Bearer <token>'.")
    user_id: str
    remote: bool
    second_factor: bool
    expires_at_utc: str


class CadEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


REJECT_STATUS = {
    "oversized": 413,
    "malformed": 400,
    "unknown_type": 400,
    "unknown_sensor": 403,
    "bad_signature": 401,
    "invalid_field": 422,
    "snippet_length": 422,
    "audio_too_long": 413,
    "replayed": 409,
}

IncidentId = Annotated[str, PathParam(min_length=1, max_length=200)]


async def _freeze_long_lived(every_s: float) -> None:
    """Every ``every_s``: collect the young generations, then freeze what is alive, so that a
    full collection only walks what came since (ADR 0110). Cyclic garbage among frozen
    objects is not collected until shutdown unfreezes them: what was in flight at a freeze."""
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(every_s)
            gc.collect(1)
            gc.freeze()


def create_app(server: Server) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        interval = sys.getswitchinterval()
        if server.switch_interval_s is not None:
            sys.setswitchinterval(server.switch_interval_s)
        await server.warm()
        for job in server.startup:  # e.g. re-send calls not delivered before a restart
            await job()
        tasks = [asyncio.create_task(job()) for job in server.background]  # e.g. pipeline ticks
        if server.gc_freeze_every_s is not None:
            tasks.append(asyncio.create_task(_freeze_long_lived(server.gc_freeze_every_s)))
        yield
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.settle()
        await server.flow.drain()
        server.close()
        sys.setswitchinterval(interval)
        if server.gc_freeze_every_s is not None:
            gc.unfreeze()

    app = FastAPI(
        lifespan=lifespan,
        title=f"{server.title} API",
        version="1",
        description="Acoustic gunshot detection: sensor reports in, review console and "
        "dispatch board out. Every route names the policy action it performs.",
    )
    app.state.server = server
    app.state.policy_gate = server.gate
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["iso_utc"] = iso_utc
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    flow = server.flow

    def audit(kind: str, **data: Any) -> None:
        if server.audit is not None:
            server.audit(kind, data)

    def actor_of(request: Request) -> Actor:
        user = server.gate.user(request)
        if user is None:  # require_action ran first, so this does not happen
            raise HTTPException(401, "not signed in")
        return user.actor

    def workstation_of(request: Request) -> str:
        user = server.gate.user(request)
        return user.workstation if user is not None else ""

    def visible_records(request: Request) -> list[Record]:
        out = []
        for rec in flow.book.queue():
            res = server.incident_resource(rec.current.incident.incident_id)
            if server.gate.can(request, Action.INCIDENT_VIEW, res):
                out.append(rec)
        return out

    def visible_calls(request: Request) -> list[dict[str, Any]]:
        actor = actor_of(request)
        calls = flow.visible_calls(server.role_of(actor), workstation_of(request) or None)
        return [
            c.to_dict()
            for c in calls
            if server.gate.can(
                request, Action.INCIDENT_VIEW, server.incident_resource(c.incident_id)
            )
        ]

    def get_record(incident_id: str) -> Record:
        rec = flow.book.records.get(incident_id)
        if rec is None:
            raise HTTPException(404, f"no incident {incident_id!r}")
        return rec

    def detail(rec: Record) -> dict[str, Any]:
        inc = rec.current.incident
        now = flow.clock.now()
        call = flow.calls.get(inc.incident_id)
        return {
            **queue_item(rec, now),
            "machine": incident_dict(rec.machine.incident),
            "history": [version_dict(v) for v in rec.versions],
            "journal": [
                {
                    "at_utc": iso_utc(j.at_s),
                    "command": j.command,
                    "author": j.author,
                    "reason": j.reason,
                    "params": j.params,
                    **j.outcome.to_dict(),
                }
                for j in flow.book.journal_for(inc.incident_id)
            ],
            "sensors": server.evidence.sensors(inc),
            "timeline": server.evidence.timeline(inc),
            "classification": inc.extra.get("classification"),
            "call": call.to_dict() if call else None,
            "time_to_open_s": rec.time_to_open_s,
            "time_to_decision_s": rec.time_to_decision_s,
        }

    # --- sensor reports ----------------------------------------------------------------

    @app.post(
        "/api/v1/reports",
        response_model=ReportAccepted,
        tags=["sensors"],
        summary="Receive one signed sensor report (authenticated by its signature).",
        responses={400: {}, 401: {}, 403: {}, 409: {}, 413: {}, 422: {}},
    )
    async def receive_report(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and (
            not declared.isdigit() or int(declared) > server.max_report_bytes
        ):
            audit("report.rejected", reason="oversized", detail=f"content-length {declared}")
            raise HTTPException(413, f"report larger than {server.max_report_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > server.max_report_bytes:
                audit("report.rejected", reason="oversized", detail="streamed body")
                raise HTTPException(413, f"report larger than {server.max_report_bytes} bytes")
        try:
            result = server.verifier.verify_report(bytes(body), received_s=flow.clock.now())
        except InputError as exc:
            audit("report.rejected", reason="unverifiable", detail=str(exc))
            raise HTTPException(401, exc.to_dict()) from exc
        reason = getattr(getattr(result, "reason", None), "value", None)
        if reason is not None:  # a Rejection
            info = result.to_dict()
            if reason == "duplicate":
                return ReportAccepted(status="duplicate", serial=info["serial"], seq=info["seq"])
            audit("report.rejected", **info)
            raise HTTPException(REJECT_STATUS.get(reason, 400), info)
        try:
            made = server.ingest_verified(result)
        except InputError as exc:
            audit("report.rejected", reason="invalid_field", detail=str(exc))
            raise HTTPException(422, exc.to_dict()) from exc
        return ReportAccepted(
            status="accepted", serial=result.serial, seq=result.seq, incidents=made
        )

    # --- review API ------------------------------------------------------------------

    @app.get(
        "/api/v1/queue",
        tags=["review"],
        summary="Open incidents in priority order, with review clocks.",
        dependencies=[Depends(require_action(Action.INCIDENT_SEARCH))],
    )
    def api_queue(request: Request) -> list[dict[str, Any]]:
        now = flow.clock.now()
        return [queue_item(r, now) for r in visible_records(request)]

    @app.get(
        "/api/v1/incidents/{incident_id}",
        tags=["review"],
        summary="One incident: current version, machine version, history, journal, evidence.",
        dependencies=[Depends(require_action(Action.INCIDENT_VIEW))],
    )
    def api_incident(incident_id: IncidentId, request: Request) -> dict[str, Any]:
        rec = get_record(incident_id)
        user = server.gate.user(request)
        if user is not None:
            flow.book.mark_opened(incident_id, user.actor.user_id, flow.clock.now())
        return detail(rec)

    @app.get(
        "/api/v1/incidents/{incident_id}/map.geojson",
        tags=["review"],
        summary="Location, uncertainty ellipse and the sensors that heard it (GeoJSON).",
        dependencies=[Depends(require_action(Action.INCIDENT_VIEW))],
    )
    def api_map(incident_id: IncidentId) -> dict[str, Any]:
        return server.evidence.map_geojson(get_record(incident_id).current.incident)

    def _clip(incident_id: str, serial: str) -> AudioClip:
        clip = server.evidence.clip(get_record(incident_id).current.incident, serial)
        if clip is None:
            raise HTTPException(404, f"no audio from sensor {serial!r} for {incident_id!r}")
        return clip

    audio_dep = [Depends(require_action(Action.INCIDENT_VIEW))]

    @app.get(
        "/api/v1/incidents/{incident_id}/audio/{serial}.wav",
        tags=["review"],
        summary="The sensor's audio snippet.",
        dependencies=audio_dep,
        response_class=Response,
    )
    def api_audio(incident_id: IncidentId, serial: str) -> Response:
        c = _clip(incident_id, serial)
        return Response(wav_bytes(c.samples, c.rate_hz), media_type="audio/wav")

    @app.get(
        "/api/v1/incidents/{incident_id}/audio/{serial}/waveform.png",
        tags=["review"],
        summary="Waveform image.",
        dependencies=audio_dep,
        response_class=Response,
    )
    def api_waveform(incident_id: IncidentId, serial: str) -> Response:
        return Response(waveform_png(_clip(incident_id, serial).samples), media_type="image/png")

    @app.get(
        "/api/v1/incidents/{incident_id}/audio/{serial}/spectrogram.png",
        tags=["review"],
        summary="Spectrogram image.",
        dependencies=audio_dep,
        response_class=Response,
    )
    def api_spectrogram(incident_id: IncidentId, serial: str) -> Response:
        c = _clip(incident_id, serial)
        return Response(spectrogram_png(c.samples, c.rate_hz), media_type="image/png")

    async def run_command(
        request: Request, incident_id: str, name: str, reason: str, params: dict[str, Any]
    ) -> OutcomeOut:
        actor = actor_of(request)
        try:
            cmd = make_command(name, actor.user_id, reason, params)
        except InputError as exc:
            return OutcomeOut(
                ok=False,
                outcome="Failed",
                command=name,
                incident_id=incident_id,
                reason=str(exc),
                version=None,
            )
        outcome, call = await flow.review(incident_id, cmd)
        await asyncio.to_thread(  # a durable append: off the loop that feeds the consoles
            audit,
            "review.command",
            incident_id=incident_id,
            command=name,
            user=actor.user_id,
            ok=outcome.ok,
            reason=reason,
        )
        return OutcomeOut(**outcome.to_dict(), call=call.to_dict() if call else None)

    @app.post(
        "/api/v1/incidents/{incident_id}/commands/{name}",
        tags=["review"],
        response_model=OutcomeOut,
        summary="Apply a review command (confirm, dismiss, relocate, set_rounds, set_shooters, "
        "set_automatic, set_movement, add_note, escalate). Always answers OK or Failed.",
        dependencies=[Depends(require_action(Action.INCIDENT_CHANGE))],
        responses={404: {}},
    )
    async def api_command(
        incident_id: IncidentId,
        name: Annotated[str, PathParam(max_length=40)],
        body: ReviewCommandIn,
        request: Request,
    ) -> OutcomeOut:
        get_record(incident_id)
        return await run_command(request, incident_id, name, body.reason, body.params)

    # --- dispatch API ----------------------------------------------------------------

    @app.get(
        "/api/v1/calls",
        tags=["dispatch"],
        summary="Calls for service visible to the caller (deployment mode rules apply).",
        dependencies=[Depends(require_action(Action.INCIDENT_VIEW))],
    )
    def api_calls(request: Request) -> list[dict[str, Any]]:
        return visible_calls(request)

    @app.post(
        "/api/v1/incidents/{incident_id}/cad",
        tags=["dispatch"],
        response_model=OutcomeOut,
        summary="SF DEM: a supervisor enters the activation into CAD.",
        dependencies=[Depends(require_action(Action.INCIDENT_DISPATCH))],
        responses={404: {}},
    )
    def api_cad(incident_id: IncidentId, body: CadEntryIn, request: Request) -> OutcomeOut:
        get_record(incident_id)
        actor = actor_of(request)
        out = flow.enter_into_cad(
            incident_id,
            author=actor.user_id,
            role=server.role_of(actor),
            workstation=workstation_of(request) or None,
        )
        audit(
            "dispatch.cad",
            incident_id=incident_id,
            user=actor.user_id,
            ok=out.ok,
            reason=body.reason,
        )
        call = flow.calls.get(incident_id)
        return OutcomeOut(**out.to_dict(), call=call.to_dict() if call else None)

    @app.get(
        "/api/v1/boundaries.geojson",
        tags=["dispatch"],
        summary="Police boundaries (the map's base layer; no online tiles).",
        dependencies=[Depends(require_action(Action.INCIDENT_SEARCH))],
    )
    def api_boundaries() -> Response:
        return Response(_boundaries_json(server), media_type="application/geo+json")

    @app.get(
        "/api/v1/events",
        tags=["dispatch"],
        summary="Server-sent events: queue updates and dispatch board changes.",
        dependencies=[Depends(require_action(Action.INCIDENT_VIEW))],
        response_class=StreamingResponse,
    )
    async def api_events(request: Request) -> StreamingResponse:
        return StreamingResponse(
            _sse(request, server),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- browser pages ---------------------------------------------------------------

    @app.get("/", include_in_schema=False, dependencies=[Depends(_login_action)])
    def root() -> RedirectResponse:
        return RedirectResponse("/console", status_code=303)

    pol = server.gate.engine.policy(server.gate.policy_id)
    purposes = list(pol.purposes) if pol is not None else []

    def sign_in(request: Request, username: str, password: str, totp: str, workstation: str) -> Any:
        """The identity service checks password, lockout and (remote) TOTP, and audits the
        attempt; the session it issues is the only credential handed out."""
        from shotwatch.policy.identity import AuthError

        try:
            return server.identity.login(
                username,
                password,
                address=client_address(request),
                totp_code=totp or None,
                workstation=workstation,
            )
        except AuthError:
            return None

    def login_form(request: Request, status: int = 200, error: str = "") -> HTMLResponse:
        remote = server.identity.is_remote(client_address(request))
        return templates.TemplateResponse(
            request,
            "login.html",
            {
                "title": server.title,
                "purposes": purposes,
                "workstations": list(pol.workstations) if pol is not None else [],
                "remote": remote,
                "error": error,
                "demo_hint": server.demo_hint,
            },
            status_code=status,
        )

    @app.get(
        "/login",
        response_class=HTMLResponse,
        tags=["pages"],
        summary="Sign-in page.",
        dependencies=[Depends(_login_action)],
    )
    def login_page(request: Request) -> HTMLResponse:
        return login_form(request)

    @app.post(
        "/login",
        tags=["pages"],
        summary="Sign in from the console (password, TOTP when remote; sets the session cookie).",
        dependencies=[Depends(_login_action)],
        response_class=Response,
        responses={401: {}},
    )
    def login(
        request: Request,
        *,
        username: Annotated[str, Form(max_length=128)],
        password: Annotated[str, Form(max_length=1024)],
        totp: Annotated[str, Form(max_length=12)] = "",
        purpose: Annotated[str, Form(max_length=100)] = "",
        workstation: Annotated[str, Form(max_length=100)] = "",
        next: Annotated[str, Form(max_length=200)] = "/console",
    ) -> Response:
        result = sign_in(request, username, password, totp, workstation)
        if result is None:
            return login_form(
                request,
                401,
                "Sign-in refused: wrong user name, password or code, or the account is "
                "locked. Each attempt is recorded.",
            )
        dest = next if next.startswith("/") and not next.startswith("//") else "/console"
        resp = RedirectResponse(dest, status_code=303)
        opts: dict[str, Any] = {
            "httponly": True,
            "samesite": "strict",
            "secure": request.url.scheme == "https",  # behind TLS the cookie never leaves it
            "max_age": max(0, int(result.expires_at_s - server.flow.clock.now())),
        }
        resp.set_cookie(SESSION_COOKIE, result.token, **opts)
        resp.set_cookie(PURPOSE_COOKIE, purpose, **opts)
        return resp

    @app.post(
        "/api/v1/login",
        tags=["auth"],
        response_model=LoginOut,
        summary="Sign in (JSON): a session token for 'Authorization: Bearer'. A TOTP code is "
        "required from outside the internal networks.",
        dependencies=[Depends(_login_action)],
        responses={401: {}},
    )
    def api_login(body: LoginIn, request: Request) -> LoginOut:
        result = sign_in(request, body.username, body.password, body.totp, body.workstation)
        if result is None:
            raise HTTPException(
                401,
                {"reason": "sign-in refused", "detail": "wrong user, password or code, or "
                 "account locked"},
            )  # fmt: skip
        return LoginOut(
            token=result.token,
            user_id=result.user_id,
            remote=result.remote,
            second_factor=result.second_factor,
            expires_at_utc=iso_utc(result.expires_at_s),
        )

    @app.post(
        "/logout",
        tags=["auth"],
        summary="End the session (cookie or bearer token).",
        dependencies=[Depends(_login_action)],
        response_class=Response,
    )
    def logout(request: Request) -> Response:
        token = request_token(request)
        if token and server.gate.services.by_token(token) is None:
            server.identity.logout(token)
        wants_html = "text/html" in request.headers.get("accept", "")
        resp: Response = (
            RedirectResponse("/login", status_code=303) if wants_html else Response(status_code=204)
        )
        resp.delete_cookie(SESSION_COOKIE)
        resp.delete_cookie(PURPOSE_COOKIE)
        return resp

    def page(name: str, request: Request, **ctx: Any) -> HTMLResponse:
        user = server.gate.user(request)
        return templates.TemplateResponse(
            request,
            name,
            {
                "title": server.title,
                "user": user.actor if user else None,
                "purpose": request_purpose(request),
                "workstation": user.workstation if user else "",
                "demo_hint": server.demo_hint,
                "mode": flow.mode.name,
                **ctx,
            },
        )

    def queue_page(template: str, request: Request) -> HTMLResponse:
        """The queue as the caller may see it, with review clocks at ``now``."""
        now = flow.clock.now()
        items = [queue_item(r, now) for r in visible_records(request)]
        return page(template, request, now_s=now, items=items)

    @app.get(
        "/console",
        response_class=HTMLResponse,
        tags=["pages"],
        summary="Review console: the queue.",
        dependencies=[Depends(require_action(Action.INCIDENT_SEARCH))],
    )
    def console(request: Request) -> HTMLResponse:
        return queue_page("console.html", request)

    @app.get(
        "/console/queue",
        response_class=HTMLResponse,
        tags=["pages"],
        summary="The queue table (HTMX fragment).",
        dependencies=[Depends(require_action(Action.INCIDENT_SEARCH))],
    )
    def console_queue(request: Request) -> HTMLResponse:
        return queue_page("_queue.html", request)

    @app.get(
        "/console/incidents/{incident_id}",
        response_class=HTMLResponse,
        tags=["pages"],
        summary="Review one incident.",
        dependencies=[Depends(require_action(Action.INCIDENT_VIEW))],
    )
    def console_incident(incident_id: IncidentId, request: Request) -> HTMLResponse:
        rec = get_record(incident_id)
        user = server.gate.user(request)
        if user is not None:
            flow.book.mark_opened(incident_id, user.actor.user_id, flow.clock.now())
        return page("incident.html", request, d=detail(rec))

    @app.post(
        "/console/incidents/{incident_id}/commands",
        response_class=HTMLResponse,
        tags=["pages"],
        summary="Review command from the console form (HTMX).",
        dependencies=[Depends(require_action(Action.INCIDENT_CHANGE))],
    )
    async def console_command(incident_id: IncidentId, request: Request) -> HTMLResponse:
        get_record(incident_id)
        form = await request.form()
        name = str(form.get("command", ""))
        reason = str(form.get("reason", ""))
        params = _form_params(name, {k: str(v) for k, v in form.items()})
        if isinstance(params, str):
            out = OutcomeOut(
                ok=False,
                outcome="Failed",
                command=name,
                incident_id=incident_id,
                reason=params,
                version=None,
            )
        else:
            out = await run_command(request, incident_id, name, reason, params)
        resp = page("_outcome.html", request, o=out)
        if out.ok:
            resp.headers["HX-Trigger"] = "incident-changed"
        return resp

    @app.get(
        "/console/incidents/{incident_id}/panel",
        response_class=HTMLResponse,
        tags=["pages"],
        summary="Incident state and history (HTMX fragment).",
        dependencies=[Depends(require_action(Action.INCIDENT_VIEW))],
    )
    def console_panel(incident_id: IncidentId, request: Request) -> HTMLResponse:
        return page("_panel.html", request, d=detail(get_record(incident_id)))

    @app.get(
        "/board",
        response_class=HTMLResponse,
        tags=["pages"],
        summary="Dispatch board (live).",
        dependencies=[Depends(require_action(Action.INCIDENT_VIEW))],
    )
    def board(request: Request) -> HTMLResponse:
        return page("board.html", request, calls=visible_calls(request))

    @app.post(
        "/board/{incident_id}/cad",
        response_class=HTMLResponse,
        tags=["pages"],
        summary="Enter into CAD from the board (HTMX).",
        dependencies=[Depends(require_action(Action.INCIDENT_DISPATCH))],
    )
    def board_cad(incident_id: IncidentId, request: Request) -> HTMLResponse:
        get_record(incident_id)
        actor = actor_of(request)
        out = flow.enter_into_cad(
            incident_id,
            author=actor.user_id,
            role=server.role_of(actor),
            workstation=workstation_of(request) or None,
        )
        audit("dispatch.cad", incident_id=incident_id, user=actor.user_id, ok=out.ok)
        return page("_outcome.html", request, o=OutcomeOut(**out.to_dict()))

    @app.get(
        "/officer",
        response_class=HTMLResponse,
        tags=["pages"],
        summary="Mobile-width view of calls for service.",
        dependencies=[Depends(require_action(Action.INCIDENT_VIEW))],
    )
    def officer(request: Request) -> HTMLResponse:
        return page("officer.html", request, calls=visible_calls(request))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body FastAPI could not even parse
            refused = await unauthenticated(request)
            if refused is not None:
                return refused
        wants_html = "text/html" in request.headers.get("accept", "")
        not_signed_in = exc.status_code == 401
        if wants_html and not_signed_in and request.method == "GET":
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return JSONResponse(
            {"detail": exc.detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def unauthenticated(request: Request) -> Response | None:
        """FastAPI parses a body before any dependency runs; a caller who is not signed in
        still gets the 401 (audited) rather than a description of what the route expects."""
        act = next(
            (a for a in declared_actions(request.scope.get("route")) if a is not Action.LOGIN),
            None,
        )
        if act is None:
            return None
        gate = server.gate
        if await run_in_threadpool(gate.principal, request) is not None:
            return None
        why = str(getattr(request.state, "auth_error", ""))
        err = await run_in_threadpool(gate.refuse, request, act, why)
        return JSONResponse({"detail": err.detail}, 401, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return await unauthenticated(request) or await request_validation_exception_handler(
            request, exc
        )

    @app.exception_handler(InputError)
    async def input_error(_request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": exc.to_dict()}, status_code=422)

    return app


def _login_action(request: Request) -> None:
    """Signing in is the LOGIN action: the identity service decides it (password, lockout,
    TOTP when remote) and audits every attempt."""
    return None


setattr(_login_action, "shotwatch_action", Action.LOGIN)  # noqa: B010


def _boundaries_json(server: Server) -> str:
    cached = getattr(server, "_boundaries_cache", None)
    if cached is None:
        cached = json.dumps(server.flow.boundaries.to_geojson())
        server._boundaries_cache = cached  # type: ignore[attr-defined]
    return str(cached)


_STREAM_END: dict[str, Any] = {}


async def _sse(request: Request, server: Server) -> AsyncIterator[bytes]:
    """Queue and board events, each shown only if the subscriber may view its incident.

    A watcher re-reads the subscriber from the identity service off the event loop when the
    identity service changed something (checked every ``STREAM_RECHECK_S``) and at least every
    ``STREAM_FULL_RECHECK_S``, and ends the stream once the sign-in is no longer valid (signed
    out, transferred, locked, expired); event delivery never waits for the database."""
    hub = server.flow.hub
    q = hub.subscribe()
    gate = server.gate
    ended = asyncio.Event()

    async def watch() -> None:
        state = {"epoch": float(getattr(gate.identity, "epoch", 0)), "at": time.monotonic()}
        while not ended.is_set():
            await asyncio.sleep(STREAM_RECHECK_S)
            if not gate.stream_due(state):
                continue
            if await asyncio.to_thread(gate.refresh, request) is None:
                ended.set()
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(_STREAM_END)

    watcher = asyncio.create_task(watch())
    try:
        yield b": connected\n\n"
        while not ended.is_set():
            try:
                ev = await asyncio.wait_for(q.get(), timeout=15.0)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": keep-alive\n\n"
                continue
            if ev is _STREAM_END or ended.is_set():
                return
            batch = [ev]  # in a burst, send what is already waiting in one write
            while len(batch) < 64 and not q.empty():
                batch.append(q.get_nowait())
            out = []
            for e in batch:
                if e is _STREAM_END or ended.is_set():
                    break
                res, wire = _wire_event(server, e)
                if res is None or gate.can(request, Action.INCIDENT_VIEW, res):
                    out.append(wire)
            if out:
                yield b"".join(out)
            if ended.is_set():
                return
    finally:
        ended.set()
        watcher.cancel()
        hub.unsubscribe(q)


_WIRE_KEEP = 4096


def _wire_event(server: Server, ev: dict[str, Any]) -> tuple[Resource | None, bytes]:
    """The policy resource and the encoded bytes of one event, computed once per event (not
    once per subscriber: fifty consoles share one routing lookup and one JSON encoding)."""
    cache = server.wire_cache
    hit = cache.get(ev["seq"])
    if hit is not None:
        return hit
    iid = _event_incident(server, ev)
    res = server.incident_resource(iid) if iid is not None else None
    data = json.dumps(ev["data"], default=_json_default)
    out = (res, f"id: {ev['seq']}\nevent: {ev['topic']}\ndata: {data}\n\n".encode())
    if len(cache) >= _WIRE_KEEP:
        for k in list(cache)[: _WIRE_KEEP // 2]:  # oldest first (insertion order)
            del cache[k]
    cache[ev["seq"]] = out
    return out


def _event_incident(server: Server, ev: dict[str, Any]) -> str | None:
    data = ev["data"]
    if "incident_id" in data:
        return str(data["incident_id"])
    if "call" in data:
        return str(data["call"]["incident_id"])
    return None


def _json_default(o: object) -> object:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def _form_params(name: str, form: dict[str, str]) -> dict[str, Any] | str:
    """Console form fields -> command parameters (or a message naming the bad field)."""
    try:
        if name == "dismiss":
            return {"kind": form.get("kind", "other")}
        if name == "relocate":
            return {"lat_deg": float(form["lat_deg"]), "lon_deg": float(form["lon_deg"])}
        if name == "set_rounds":
            return {"rounds": int(form["rounds"])}
        if name == "set_shooters":
            return {"shooters": int(form["shooters"])}
        if name == "set_automatic":
            return {"automatic": form.get("automatic") in ("on", "true", "1")}
        if name == "set_movement":
            moving = form.get("moving") in ("on", "true", "1")
            out: dict[str, Any] = {"moving": moving}
            if moving:
                out["heading_deg"] = float(form["heading_deg"])
                if form.get("speed_mps"):
                    out["speed_mps"] = float(form["speed_mps"])
            return out
        if name == "add_note":
            return {"text": form.get("text", "")}
        if name == "escalate":
            return {"to": form.get("to", "supervisor")}
        return {}
    except KeyError as exc:
        return f"{exc.args[0]}: required"
    except ValueError as exc:
        return f"not a number: {exc}"
