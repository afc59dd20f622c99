"""Saving and restoring review and dispatch state (plain functions over a session factory).

:class:`SqlFlowStore` is the :class:`~shotwatch.dispatch.flows.FlowStore` of the server: each
change is committed as it happens, so a restarted server (:func:`restore_flow`) has every
incident version, the journal, the review clocks and every call, and re-sends calls whose
delivery on some channel never succeeded (receivers de-duplicate on the idempotency key).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shotwatch.core.model import (
    EvaluationMode,
    EvaluationStatus,
    Incident,
    Movement,
    Provenance,
)
from shotwatch.dispatch.boundaries import RoutingMethod
from shotwatch.dispatch.channels import Delivery
from shotwatch.dispatch.flows import DispatchFlow
from shotwatch.dispatch.models import CallForService, CallStatus
from shotwatch.dispatch.tables import (
    CallRow,
    DeliveryRow,
    ReviewJournalRow,
    ReviewRecordRow,
    ReviewVersionRow,
)
from shotwatch.incidents.review import JournalEntry, Outcome, Record, ReviewState, Version
from shotwatch.storage.writer import GroupWriter


def _f(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float):
        return _f(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def incident_to_json(inc: Incident) -> dict[str, Any]:
    mv = inc.movement
    pv = inc.provenance
    return {
        "incident_id": inc.incident_id,
        "shot_ids": list(inc.shot_ids),
        "start_s": inc.start_s,
        "end_s": inc.end_s,
        "x_m": inc.x_m,
        "y_m": inc.y_m,
        "rounds": inc.rounds,
        "shooters": inc.shooters,
        "shooter_positions": [[_f(a), _f(b)] for a, b in inc.shooter_positions],
        "automatic": inc.automatic,
        "cadence_rps": _f(inc.cadence_rps),
        "movement": None
        if mv is None
        else {
            "speed_mps": _f(mv.speed_mps),
            "heading_deg": _f(mv.heading_deg),
            "distance_m": _f(mv.distance_m),
        },
        "lat_deg": _f(inc.lat_deg),
        "lon_deg": _f(inc.lon_deg),
        "gunfire_probability": _f(inc.gunfire_probability),
        "label": inc.label,
        "status": inc.status.value,
        "provenance": None
        if pv is None
        else {
            "mode": pv.mode.value,
            "algorithm": pv.algorithm,
            "version": pv.version,
            "created_s": pv.created_s,
            "author": pv.author,
            "supersedes": pv.supersedes,
        },
        "extra": _jsonable(dict(inc.extra)),
    }


def incident_from_json(d: dict[str, Any]) -> Incident:
    mv = d.get("movement")
    pv = d.get("provenance")
    return Incident(
        incident_id=d["incident_id"],
        shot_ids=tuple(d["shot_ids"]),
        start_s=d["start_s"],
        end_s=d["end_s"],
        x_m=d["x_m"],
        y_m=d["y_m"],
        rounds=d["rounds"],
        shooters=d["shooters"],
        shooter_positions=tuple((_nan(a), _nan(b)) for a, b in d["shooter_positions"]),
        automatic=d["automatic"],
        cadence_rps=d["cadence_rps"],
        movement=None
        if mv is None
        else Movement(_nan(mv["speed_mps"]), _nan(mv["heading_deg"]), _nan(mv["distance_m"])),
        lat_deg=d["lat_deg"],
        lon_deg=d["lon_deg"],
        gunfire_probability=d["gunfire_probability"],
        label=d["label"],
        status=EvaluationStatus(d["status"]),
        provenance=None
        if pv is None
        else Provenance(
            EvaluationMode(pv["mode"]),
            pv["algorithm"],
            pv["version"],
            pv["created_s"],
            pv["author"],
            pv["supersedes"],
        ),
        extra=dict(d.get("extra") or {}),
    )


def call_to_json(call: CallForService) -> dict[str, Any]:
    d = asdict(call)
    d["routing_method"] = call.routing_method.value
    d["status"] = call.status.value
    out: dict[str, Any] = _jsonable(d)
    return out


def call_from_json(d: dict[str, Any]) -> CallForService:
    kw = dict(d)
    kw["routing_method"] = RoutingMethod(kw["routing_method"])
    kw["status"] = CallStatus(kw["status"])
    kw["routing_distance_m"] = _nan(kw["routing_distance_m"])
    return CallForService(**kw)


def record_values(rec: Record) -> dict[str, Any]:
    """The mutable queue state of one incident, as column values (a snapshot)."""
    return {
        "arrival_s": rec.arrival_s,
        "state": rec.state.value,
        "escalated_to": rec.escalated_to,
        "opened_s": rec.opened_s,
        "opened_by": rec.opened_by,
        "decided_s": rec.decided_s,
    }


def version_row(version: Version) -> ReviewVersionRow:
    return ReviewVersionRow(
        incident_id=version.incident.incident_id,
        number=version.number,
        command=version.command,
        reason=version.reason,
        author=version.author,
        at_s=version.at_s,
        incident=incident_to_json(version.incident),
    )


def journal_row(entry: JournalEntry) -> ReviewJournalRow:
    return ReviewJournalRow(
        at_s=entry.at_s,
        incident_id=entry.incident_id,
        command=entry.command,
        author=entry.author,
        reason=entry.reason,
        params=_jsonable(entry.params),
        ok=entry.outcome.ok,
        outcome_reason=entry.outcome.reason,
        version=entry.outcome.version,
    )


def call_row(call: CallForService) -> CallRow:
    return CallRow(
        call_id=call.call_id,
        incident_id=call.incident_id,
        incident_version=call.incident_version,
        status=call.status.value,
        created_s=call.created_s,
        call=call_to_json(call),
    )


def delivery_row(delivery: Delivery) -> DeliveryRow:
    return DeliveryRow(
        call_id=delivery.call_id,
        idempotency_key=delivery.idempotency_key,
        channel=delivery.channel,
        ok=delivery.ok,
        reason=delivery.reason,
        attempts=_jsonable(delivery.to_dict()["attempts"]),
    )


def _upsert_records(s: Session, records: dict[str, dict[str, Any]]) -> None:
    if not records:
        return
    have = {
        r.incident_id: r
        for r in s.scalars(
            select(ReviewRecordRow).where(ReviewRecordRow.incident_id.in_(list(records)))
        )
    }
    for iid, values in records.items():
        row = have.get(iid) or ReviewRecordRow(incident_id=iid)
        for k, v in values.items():
            setattr(row, k, v)
        s.add(row)


class SqlFlowStore:
    """Commits each change of the flow as it happens (one transaction per change)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def save_record(self, rec: Record) -> None:
        with self.sessions.begin() as s:
            _upsert_records(s, {rec.current.incident.incident_id: record_values(rec)})

    def save_version(self, version: Version) -> None:
        with self.sessions.begin() as s:
            s.add(version_row(version))

    def save_journal(self, entry: JournalEntry) -> None:
        with self.sessions.begin() as s:
            s.add(journal_row(entry))

    def save_call(self, call: CallForService) -> None:
        with self.sessions.begin() as s:
            s.add(call_row(call))

    def save_delivery(self, delivery: Delivery) -> None:
        with self.sessions.begin() as s:
            s.add(delivery_row(delivery))


class BatchedSqlFlowStore:
    """Group commit on a writer thread (ADR 0099): ``save_*`` only queue the change (the
    caller, the server's event loop, never waits for the database); the writer commits all
    changes waiting at that moment in one transaction, in the order they were made (the queue
    state row of an incident is written once per batch with its latest values).

    :meth:`barrier` waits (without blocking the loop) until everything queued so far is
    committed: a reviewer's command is acknowledged only then. Machine incidents are shown
    before their commit (milliseconds later); a crash in between loses no evidence, since the
    pipeline's pulses are stored and a restarted server rebuilds recent incidents from them.
    A batch that fails is retried, then written change by change so that one bad change
    cannot take the others with it; what failed is kept in :attr:`errors`.
    """

    def __init__(
        self, sessions: sessionmaker[Session], *, max_batch: int = 1000, retries: int = 3
    ) -> None:
        self.sessions = sessions
        self.errors: list[str] = []
        self._writer: GroupWriter[tuple[Any, ...]] = GroupWriter(
            self._commit,
            self._failed,
            name="flow-store-writer",
            max_batch=max_batch,
            retries=retries,
        )

    @property
    def batches(self) -> int:
        return self._writer.batches

    @property
    def changes(self) -> int:
        return self._writer.changes

    # -- FlowStore ------------------------------------------------------------------------
    def save_record(self, rec: Record) -> None:
        self._writer.put(("record", rec.current.incident.incident_id, record_values(rec)))

    def save_version(self, version: Version) -> None:
        self._writer.put(("row", version_row, version))

    def save_journal(self, entry: JournalEntry) -> None:
        self._writer.put(("row", journal_row, entry))

    def save_call(self, call: CallForService) -> None:
        self._writer.put(("row", call_row, call))

    def save_delivery(self, delivery: Delivery) -> None:
        self._writer.put(("row", delivery_row, delivery))

    # -- waiting --------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until everything queued before this call is committed (or failed)."""
        return self._writer.flush(timeout_s)

    async def barrier(self) -> None:
        """:meth:`flush` for the event loop."""
        if self._writer.idle():
            return
        await asyncio.to_thread(self.flush)

    def close(self) -> None:
        """Commit what is queued and stop the writer."""
        self._writer.close()

    # -- writer ---------------------------------------------------------------------------
    def _failed(self, change: tuple[Any, ...], exc: Exception) -> None:
        what = change[1] if change[0] == "record" else change[1].__name__
        self.errors.append(f"{what}: {exc!r}")

    def _commit(self, batch: list[tuple[Any, ...]]) -> None:
        records: dict[str, dict[str, Any]] = {}
        with self.sessions.begin() as s:
            for change in batch:
                if change[0] == "record":
                    records[change[1]] = change[2]
                else:
                    s.add(change[1](change[2]))
            s.flush()
            _upsert_records(s, records)


Undelivered = list[tuple[CallForService, list[str]]]


def restore_flow(flow: DispatchFlow, sessions: sessionmaker[Session]) -> Undelivered:
    """Load the stored state into ``flow`` (whose book is empty). Returns each latest call
    version with the configured channels that have not yet delivered it (to be re-sent)."""
    book = flow.book
    with sessions() as s:
        versions: dict[str, list[Version]] = {}
        for v in s.scalars(
            select(ReviewVersionRow).order_by(ReviewVersionRow.incident_id, ReviewVersionRow.number)
        ):
            versions.setdefault(v.incident_id, []).append(
                Version(
                    v.number, incident_from_json(v.incident), v.command, v.reason, v.author, v.at_s
                )
            )
        for r in s.scalars(select(ReviewRecordRow)):
            vs = versions.get(r.incident_id)
            if not vs:
                continue
            book.records[r.incident_id] = Record(
                vs,
                r.arrival_s,
                ReviewState(r.state),
                r.escalated_to,
                r.opened_s,
                r.opened_by,
                r.decided_s,
            )
        for j in s.scalars(select(ReviewJournalRow).order_by(ReviewJournalRow.id)):
            book.journal.append(
                JournalEntry(
                    j.at_s,
                    j.incident_id,
                    j.command,
                    j.author,
                    j.reason,
                    dict(j.params),
                    Outcome(j.ok, j.command, j.incident_id, j.outcome_reason, j.version),
                )
            )
        for row in s.scalars(select(CallRow).order_by(CallRow.id)):
            call = call_from_json(row.call)
            flow.calls[call.incident_id] = call
            flow.call_versions.setdefault(call.incident_id, []).append(call)
        delivered = {
            (d.idempotency_key, d.channel)
            for d in s.scalars(select(DeliveryRow).where(DeliveryRow.ok.is_(True)))
        }
    names = [ch.name for ch in flow.channels]
    out: Undelivered = []
    for c in flow.calls.values():
        missing = [n for n in names if (c.idempotency_key, n) not in delivered]
        if missing:
            out.append((c, missing))
    return out


async def resend(flow: DispatchFlow, undelivered: Undelivered) -> None:
    """Deliver again on the channels that have not delivered (idempotent for receivers)."""
    by_name = {ch.name: ch for ch in flow.channels}
    for call, names in undelivered:
        for n in names:
            await flow.deliver_on(by_name[n], call)
