"""Review -> dispatch: the multi-step work across the review book, routing and channels.

``DispatchFlow.review`` applies a reviewer's command; when it confirms an incident (or changes
an incident already confirmed) a call for service is built from the new version, routed to the
precinct or district, put on the dispatch board at once and delivered through every configured
channel in the background (a slow CAD endpoint with retries never holds up the reviewer).
Deployment mode decides whether the call is a CAD job at once (NYPD) or waits for a
supervisor to enter it into CAD (SF DEM).

State changes are passed to a :class:`FlowStore` (persistence) and published on the
:class:`EventHub` (consoles and the board).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shotwatch.core.clock import Clock
from shotwatch.core.ids import stable_id
from shotwatch.core.model import Incident, iso_utc
from shotwatch.dispatch.board import EventHub
from shotwatch.dispatch.boundaries import BoundarySet
from shotwatch.dispatch.channels import Channel, Delivery
from shotwatch.dispatch.models import CallForService, CallStatus, build_call
from shotwatch.dispatch.modes import (
    DeploymentMode,
    Role,
    can_enter_into_cad,
    can_view_call,
)
from shotwatch.incidents.review import (
    AddNote,
    Command,
    ConfirmGunfire,
    Escalate,
    JournalEntry,
    Outcome,
    Record,
    ReviewBook,
    ReviewState,
    Version,
    is_multishot,
)


class FlowStore(Protocol):
    """Where the flow's state is kept (SQL in production, nothing in unit tests)."""

    def save_record(self, rec: Record) -> None: ...
    def save_version(self, version: Version) -> None: ...
    def save_journal(self, entry: JournalEntry) -> None: ...
    def save_call(self, call: CallForService) -> None: ...
    def save_delivery(self, delivery: Delivery) -> None: ...


class NullStore:
    def save_record(self, rec: Record) -> None:
        return None

    def save_version(self, version: Version) -> None:
        return None

    def save_journal(self, entry: JournalEntry) -> None:
        return None

    def save_call(self, call: CallForService) -> None:
        return None

    def save_delivery(self, delivery: Delivery) -> None:
        return None


def incident_dict(inc: Incident) -> dict[str, Any]:
    mv = inc.movement
    p = inc.gunfire_probability
    return {
        "incident_id": inc.incident_id,
        "start_utc": iso_utc(inc.start_s),
        "start_s": inc.start_s,
        "end_s": inc.end_s,
        "lat_deg": inc.lat_deg,
        "lon_deg": inc.lon_deg,
        "x_m": inc.x_m,
        "y_m": inc.y_m,
        "rounds": inc.rounds,
        "shooters": inc.shooters,
        "automatic": inc.automatic,
        "cadence_rps": inc.cadence_rps,
        "moving": mv is not None and mv.speed_mps > 0,
        "heading_deg": None if mv is None else mv.heading_deg,
        "speed_mps": None if mv is None else mv.speed_mps,
        "gunfire_probability": p if p is not None and math.isfinite(p) else None,
        "label": inc.label,
        "status": inc.status.value,
        "shot_ids": list(inc.shot_ids),
        "provenance": inc.provenance.to_dict() if inc.provenance else None,
        "notes": list(inc.extra.get("notes", [])),  # type: ignore[call-overload]
        "escalated_to": inc.extra.get("escalated_to"),
        # still forming: its shots are not final yet (ADR 0017)
        "forming": bool(inc.extra.get("tentative")),
    }


def queue_item(rec: Record, now_s: float) -> dict[str, Any]:
    inc = rec.current.incident
    return {
        **incident_dict(inc),
        "version": rec.current.number,
        "state": rec.state.value,
        "multishot": is_multishot(inc),
        "arrival_s": rec.arrival_s,
        "review_clock_s": rec.clock_s(now_s),
        "opened_by": rec.opened_by,
        "escalated_to": rec.escalated_to,
    }


def version_dict(v: Version) -> dict[str, Any]:
    return {
        "version": v.number,
        "version_id": v.version_id,
        "command": v.command,
        "reason": v.reason,
        "author": v.author,
        "at_utc": iso_utc(v.at_s),
        "incident": incident_dict(v.incident),
    }


@dataclass
class DispatchFlow:
    book: ReviewBook
    boundaries: BoundarySet
    mode: DeploymentMode
    channels: Sequence[Channel]
    clock: Clock
    hub: EventHub = field(default_factory=EventHub)
    store: FlowStore = field(default_factory=NullStore)
    calls: dict[str, CallForService] = field(default_factory=dict)
    call_versions: dict[str, list[CallForService]] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # -- machine side ---------------------------------------------------------------------

    def ingest(self, incident: Incident) -> Version:
        """An incident from the pipeline enters (or updates) the review queue."""
        now = self.clock.now()
        v = self.book.add_machine(incident, now)
        rec = self.book.records[incident.incident_id]
        self.store.save_version(v)
        self.store.save_record(rec)
        self.hub.publish("queue", queue_item(rec, now))
        return v

    # -- reviewer side --------------------------------------------------------------------

    async def review(self, incident_id: str, cmd: Command) -> tuple[Outcome, CallForService | None]:
        now = self.clock.now()
        rec0 = self.book.records.get(incident_id)
        before = rec0.current.number if rec0 else None
        outcome = self.book.submit(incident_id, cmd, now)
        self.store.save_journal(self.book.journal[-1])
        if not outcome.ok:
            await self._committed()
            return outcome, None
        rec = self.book.records[incident_id]
        if outcome.version is not None and outcome.version != before:
            self.store.save_version(rec.current)
        self.store.save_record(rec)
        self.hub.publish("queue", queue_item(rec, now))
        call = None
        changes_call = isinstance(cmd, ConfirmGunfire) or (
            incident_id in self.calls and not isinstance(cmd, AddNote | Escalate)
        )
        if rec.state is ReviewState.CONFIRMED and changes_call:
            call = self._make_call(rec, cmd.author, now)
        await self._committed()
        return outcome, call

    async def _committed(self) -> None:
        """A store that commits in the background (``barrier``) has committed the command:
        the reviewer's outcome is answered only once it is durable."""
        barrier = getattr(self.store, "barrier", None)
        if barrier is not None:
            await barrier()

    def _make_call(self, rec: Record, author: str, now: float) -> CallForService:
        inc = rec.current.incident
        unc = inc.extra.get("uncertainty_m")
        prev = self.calls.get(inc.incident_id)
        call = build_call(
            inc,
            rec.current.number,
            self.boundaries,
            created_s=prev.created_s if prev else now,
            require_cad_entry=self.mode.require_cad_entry,
            confirmed_by=prev.confirmed_by if prev else author,
            uncertainty_m=float(unc) if isinstance(unc, int | float) else None,
        )
        if (
            prev is not None
            and prev.status is CallStatus.IN_CAD
            and call.status is not (CallStatus.UNROUTED)
        ):
            call = call.with_status(CallStatus.IN_CAD, prev.cad_job_id)
        self.calls[inc.incident_id] = call
        self.call_versions.setdefault(inc.incident_id, []).append(call)
        self.store.save_call(call)
        self.hub.publish("board", {"event": "call", "call": call.to_dict()})
        for ch in self.channels:
            t = asyncio.get_running_loop().create_task(self._deliver(ch, call))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        return call

    async def _deliver(self, ch: Channel, call: CallForService) -> None:
        try:
            d = await ch.deliver(call)
        except Exception as exc:  # a broken channel must not lose the outcome
            d = Delivery(ch.name, call.call_id, call.idempotency_key, False, (), repr(exc))
        self.deliveries.append(d)
        self.store.save_delivery(d)
        self.hub.publish(
            "board",
            {"event": "delivery", "incident_id": call.incident_id, "delivery": d.to_dict()},
        )

    async def deliver_on(self, ch: Channel, call: CallForService) -> None:
        """Deliver one call version on one channel now (used to re-send after a restart)."""
        await self._deliver(ch, call)

    async def drain(self) -> None:
        """Wait for every delivery in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    # -- dispatch side --------------------------------------------------------------------

    def enter_into_cad(
        self, incident_id: str, *, author: str, role: Role, workstation: str | None
    ) -> Outcome:
        """SF DEM: a supervisor on a listed workstation enters an activation into CAD."""
        call = self.calls.get(incident_id)
        if call is None:
            return Outcome(False, "enter_cad", incident_id, "no call for this incident")
        ok, why = can_enter_into_cad(self.mode, role, workstation)
        if not ok:
            return Outcome(False, "enter_cad", incident_id, why)
        if call.status is CallStatus.IN_CAD:
            return Outcome(False, "enter_cad", incident_id, f"already in CAD ({call.cad_job_id})")
        now = self.clock.now()
        job = stable_id("cad", call.call_id, author, now)
        new = call.with_status(CallStatus.IN_CAD, job)
        self.calls[incident_id] = new
        self.call_versions[incident_id].append(new)
        self.store.save_call(new)
        self.hub.publish("board", {"event": "call", "call": new.to_dict()})
        return Outcome(True, "enter_cad", incident_id, f"CAD job {job}", call.incident_version)

    def visible_calls(
        self, role: Role, workstation: str | None, unit_id: str | None = None
    ) -> list[CallForService]:
        now = self.clock.now()
        out = [
            c
            for c in self.calls.values()
            if can_view_call(self.mode, role, workstation, c, now)[0]
            and (unit_id is None or c.unit_id == unit_id)
        ]
        return sorted(out, key=lambda c: (-c.created_s, c.call_id))
