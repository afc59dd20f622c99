"""Records under retention: store, hold, plan, and dispose with two approvers.

Disposal is a four-step flow, every step audited:

1. :meth:`RecordsService.propose` lists the records due on a date (holds excluded) in a
   disposal request;
2. two *different* people :meth:`approve` it (each approval may be checked by the policy
   engine: action ``retention.approve``);
3. :meth:`execute` re-checks holds and due dates, removes each record's content but keeps a
   stub (metadata, hash, history), writes one audit entry per record, signs a checkpoint, and
4. issues a destruction certificate (items, hashes, rule, approvers, audit inclusion proofs),
   signed with Ed25519 (:func:`verify_certificate`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shotwatch.audit.log import AuditLog, canonical, check_inclusion_proof
from shotwatch.audit.signing import load_public_b64, public_key_b64, verify_signature
from shotwatch.core.clock import Clock
from shotwatch.core.errors import InputError, ShotWatchError
from shotwatch.policy.schema import PolicyFile
from shotwatch.records.retention import Plan, RecordFacts, disposition, plan
from shotwatch.records.tables import (
    DisposalApprovalRow,
    DisposalRequestRow,
    LegalHoldRow,
    RecordRow,
)
from shotwatch.storage.tables import IncidentRow

REQUIRED_APPROVERS = 2


def _hold_item(record_id: str | None, incident_id: str | None) -> str:
    return f"record:{record_id}" if record_id is not None else f"incident:{incident_id}"


class DisposalRefused(ShotWatchError):
    pass


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _d(text: str | None) -> date | None:
    return None if not text else date.fromisoformat(text)


class RecordsService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        policies: Sequence[PolicyFile],
        audit: AuditLog,
        signing_key: Ed25519PrivateKey,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.policies = list(policies)
        self.audit = audit
        self.key = signing_key

    def _s(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ---- records and holds ---------------------------------------------------------------

    def add(
        self,
        *,
        record_id: str,
        policy_id: str,
        record_class: str,
        content: bytes,
        created_at_s: float,
        by: str,
        classification: str = "",
        command: str = "",
        title: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        with self._s() as s, s.begin():
            s.add(
                RecordRow(
                    id=record_id,
                    policy_id=policy_id,
                    record_class=record_class,
                    classification=classification,
                    command=command,
                    title=title,
                    created_at_s=created_at_s,
                    content=content,
                    content_sha256=hashlib.sha256(content).hexdigest(),
                    metadata_json=canonical(metadata or {}),
                )
            )
        self.audit.append(
            actor=by,
            action="record.create",
            kind="change",
            allowed=True,
            item=f"record:{record_id}",
            detail={"class": record_class},
        )

    def close_case(
        self,
        record_id: str,
        *,
        closed_at_s: float,
        reason: str,
        classification: str,
        by: str,
        subject_birth: str | None = None,
        subject_death: str | None = None,
        last_arrest: str | None = None,
    ) -> None:
        """Record the final disposition; the retention clock starts here."""
        with self._s() as s, s.begin():
            row = s.get(RecordRow, record_id)
            if row is None:
                raise InputError("close_case", "record_id", f"no record {record_id!r}")
            row.closed_at_s, row.closure_reason, row.classification = (
                closed_at_s,
                reason,
                classification,
            )
            row.subject_birth = subject_birth or row.subject_birth
            row.subject_death = subject_death or row.subject_death
            row.last_arrest = last_arrest or row.last_arrest
        self.audit.append(
            actor=by,
            action="record.close",
            kind="change",
            allowed=True,
            item=f"record:{record_id}",
            detail={"reason": reason, "classification": classification},
        )

    def place_hold(
        self,
        record_id: str | None = None,
        *,
        incident_id: str | None = None,
        reason: str,
        by: str,
    ) -> int:
        """Hold one record, or one incident's sensor audio (``incident_id``): nothing held is
        disposed of or purged until the hold is released. Returns the hold's id."""
        if (record_id is None) == (incident_id is None):
            raise InputError("hold", "subject", "name exactly one of a record or an incident")
        if not reason.strip():
            raise InputError("hold", "reason", "a legal hold needs a reason")
        with self._s() as s, s.begin():
            if record_id is not None and s.get(RecordRow, record_id) is None:
                raise InputError("hold", "record_id", f"no record {record_id!r}")
            if incident_id is not None and s.get(IncidentRow, incident_id) is None:
                raise InputError("hold", "incident_id", f"no incident {incident_id!r}")
            hold = LegalHoldRow(
                record_id=record_id,
                incident_id=incident_id,
                reason=reason,
                placed_by=by,
                placed_at_s=self.clock.now(),
            )
            s.add(hold)
            s.flush()
            hid = hold.id
        self.audit.append(
            actor=by,
            action="retention.hold",
            kind="change",
            allowed=True,
            item=_hold_item(record_id, incident_id),
            reason=reason,
            detail={"hold": hid, "placed": True},
        )
        return hid

    def release_hold(self, hold_id: int, *, by: str) -> None:
        with self._s() as s, s.begin():
            hold = s.get(LegalHoldRow, hold_id)
            if hold is None:
                raise InputError("hold", "id", f"no hold {hold_id}")
            if hold.released_at_s is not None:
                raise InputError("hold", "id", f"hold {hold_id} was released already")
            hold.released_by, hold.released_at_s = by, self.clock.now()
            item = _hold_item(hold.record_id, hold.incident_id)
        self.audit.append(
            actor=by,
            action="retention.hold",
            kind="change",
            allowed=True,
            item=item,
            detail={"hold": hold_id, "placed": False},
        )

    def holds(self, *, active_only: bool = True) -> list[dict[str, Any]]:
        """The legal holds (active ones unless ``active_only`` is false), oldest first."""
        with self._s() as s:
            q = select(LegalHoldRow).order_by(LegalHoldRow.id)
            if active_only:
                q = q.where(LegalHoldRow.released_at_s.is_(None))
            return [
                {
                    "id": h.id,
                    "record_id": h.record_id,
                    "incident_id": h.incident_id,
                    "reason": h.reason,
                    "placed_by": h.placed_by,
                    "placed_at_s": h.placed_at_s,
                    "released_by": h.released_by,
                    "released_at_s": h.released_at_s,
                }
                for h in s.scalars(q)
            ]

    def facts(self) -> list[RecordFacts]:
        with self._s() as s:
            held = set(
                s.scalars(
                    select(LegalHoldRow.record_id).where(
                        LegalHoldRow.released_at_s.is_(None), LegalHoldRow.record_id.is_not(None)
                    )
                )
            )
            out = []
            for r in s.scalars(select(RecordRow).order_by(RecordRow.id)):
                created = _dt(r.created_at_s)
                assert created is not None
                out.append(
                    RecordFacts(
                        record_id=r.id,
                        policy_id=r.policy_id,
                        record_class=r.record_class,
                        created_at=created,
                        classification=r.classification,
                        closed_at=_dt(r.closed_at_s),
                        closure_reason=r.closure_reason,
                        subject_birth=_d(r.subject_birth),
                        subject_death=_d(r.subject_death),
                        last_arrest=_d(r.last_arrest),
                        on_hold=r.id in held,
                        disposed=r.disposed_at_s is not None,
                    )
                )
            return out

    def plan(self, as_of: datetime) -> Plan:
        return plan(self.facts(), self.policies, as_of)

    # ---- disposal ------------------------------------------------------------------------

    def propose(self, as_of: datetime, *, by: str) -> int:
        p = self.plan(as_of)
        items = [
            {"record_id": d.record_id, "rule": d.rule_id, "action": d.action, "reason": d.reason}
            for d in p.due
        ]
        with self._s() as s, s.begin():
            req = DisposalRequestRow(
                requested_by=by,
                created_at_s=self.clock.now(),
                as_of_s=as_of.timestamp(),
                items_json=canonical({"items": items}),
            )
            s.add(req)
            s.flush()
            rid = req.id
        self.audit.append(
            actor=by,
            action="retention.plan",
            kind="disposal",
            allowed=True,
            item=f"disposal:{rid}",
            detail={"items": len(items)},
        )
        return rid

    def approve(self, request_id: int, *, approver: str) -> None:
        with self._s() as s, s.begin():
            req = s.get(DisposalRequestRow, request_id)
            if req is None:
                raise InputError("approve", "request_id", f"no disposal request {request_id}")
            if req.executed_at_s is not None:
                raise DisposalRefused(f"disposal request {request_id} was already executed")
            already = set(
                s.scalars(
                    select(DisposalApprovalRow.approver).where(
                        DisposalApprovalRow.request_id == request_id
                    )
                )
            )
            if approver in already:
                raise DisposalRefused(
                    f"{approver} already approved request {request_id}; "
                    "a second, different approver is needed"
                )
            s.add(
                DisposalApprovalRow(
                    request_id=request_id, approver=approver, approved_at_s=self.clock.now()
                )
            )
        self.audit.append(
            actor=approver,
            action="retention.approve",
            kind="disposal",
            allowed=True,
            item=f"disposal:{request_id}",
        )

    def execute(self, request_id: int, *, by: str) -> dict[str, Any]:
        now = self.clock.now()
        with self._s() as s:
            req = s.get(DisposalRequestRow, request_id)
            if req is None:
                raise InputError("execute", "request_id", f"no disposal request {request_id}")
            if req.executed_at_s is not None:
                raise DisposalRefused(f"disposal request {request_id} was already executed")
            approvers = sorted(
                set(
                    s.scalars(
                        select(DisposalApprovalRow.approver).where(
                            DisposalApprovalRow.request_id == request_id
                        )
                    )
                )
            )
            items = json.loads(req.items_json)["items"]
            requested_by, as_of_s = req.requested_by, req.as_of_s
        if len(approvers) < REQUIRED_APPROVERS:
            raise DisposalRefused(
                f"disposal needs {REQUIRED_APPROVERS} different approvers; has {approvers}"
            )
        facts = {f.record_id: f for f in self.facts()}
        done: list[dict[str, Any]] = []
        skipped: list[dict[str, str]] = []
        for item in items:
            f = facts.get(item["record_id"])
            if f is None or f.disposed:
                skipped.append(
                    {"record_id": item["record_id"], "why": "missing or already disposed"}
                )
                continue
            d = disposition(f, self.policies)
            as_of = _dt(as_of_s)
            assert as_of is not None
            if d.action == "hold":
                skipped.append(
                    {"record_id": f.record_id, "why": "legal hold placed after the proposal"}
                )
                continue
            if d.due is None or d.due > as_of:
                skipped.append({"record_id": f.record_id, "why": "no longer due"})
                continue
            with self._s() as s, s.begin():
                row = s.get(RecordRow, f.record_id)
                assert row is not None
                if d.action == "dispose":
                    row.content = None  # the stub keeps metadata, hash and history
                row.disposed_at_s = now
                row.disposal_request_id = request_id
                digest, cls, classification = (
                    row.content_sha256,
                    row.record_class,
                    row.classification,
                )
            rule_text = next(
                r.text for p in self.policies for r in p.retention if r.id == d.rule_id
            )
            seq = self.audit.append(
                actor=by,
                action="retention.dispose",
                kind="disposal",
                allowed=True,
                item=f"record:{f.record_id}",
                rules=[d.rule_id],
                reason=d.reason,
                detail={
                    "request": request_id,
                    "sha256": digest,
                    "approvers": approvers,
                    "action": d.action,
                },
            )
            done.append(
                {
                    "record_id": f.record_id,
                    "record_class": cls,
                    "classification": classification,
                    "content_sha256": digest,
                    "action": d.action,
                    "rule": d.rule_id,
                    "rule_text": rule_text,
                    "reason": d.reason,
                    "audit_seq": seq,
                }
            )
        self.audit.checkpoint()
        for item in done:
            item["audit_proof"] = self.audit.inclusion(item["audit_seq"])
        body = {
            "format": "shotwatch-destruction-certificate/1",
            "request_id": request_id,
            "requested_by": requested_by,
            "approvers": approvers,
            "executed_by": by,
            "executed_at": datetime.fromtimestamp(now, UTC).isoformat(),
            "as_of": datetime.fromtimestamp(as_of_s, UTC).isoformat(),
            "items": done,
            "skipped": skipped,
            "public_key": public_key_b64(self.key.public_key()),
        }
        cert = {"certificate": body, "signature": self.key.sign(canonical(body).encode()).hex()}
        with self._s() as s, s.begin():
            req2 = s.get(DisposalRequestRow, request_id)
            assert req2 is not None
            req2.executed_at_s = now
            req2.certificate_json = canonical(cert)
        return cert


def verify_certificate(
    cert: dict[str, Any], public_key_b64_text: str | None = None
) -> tuple[bool, str]:
    """Check a destruction certificate's signature and every audit proof inside it."""
    body = cert["certificate"]
    key = load_public_b64(public_key_b64_text or body["public_key"])
    if not verify_signature(key, cert["signature"], canonical(body).encode()):
        return False, "certificate signature does not verify"
    for item in body["items"]:
        ok, why = check_inclusion_proof(
            item["audit_proof"], public_key_b64_text or body["public_key"]
        )
        if not ok:
            return False, f"{item['record_id']}: {why}"
        entry = json.loads(item["audit_proof"]["entry"])
        if (
            entry["item"] != f"record:{item['record_id']}"
            or entry["detail"]["sha256"] != item["content_sha256"]
        ):
            return False, f"{item['record_id']}: the audit entry does not describe this item"
    return True, f"{len(body['items'])} item(s) disposed under signed, audited approval"
