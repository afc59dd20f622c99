"""The server's copy of sensor snippets under the deployment's retention rule (ADR 0114).

The policies keep sensor audio 30 hours (record class ``sensor_audio``, clock
``after_creation``) "unless it is a confirmed gunfire incident" (class ``incident_audio``,
clock ``evidence``). The server stores every report's snippet (files indexed by
``pulse_audio``); this module deletes those older than the rule's period except the snippets
of pulses in an incident that is confirmed, not yet decided (a reviewer may still confirm
it; its audio goes at the first purge after a dismissal), or under a legal hold whatever the
review decided (its audio goes at the first purge after the hold's release). Deleting is the
rule's own doing, not a disposal of records: no approvers, but every purge is audited with
the rule, the cutoff and the count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shotwatch.dispatch.tables import ReviewRecordRow
from shotwatch.incidents.review import ReviewState
from shotwatch.policy.schema import PolicyFile, Retention
from shotwatch.records.tables import LegalHoldRow
from shotwatch.storage.service import delete_pulse_audio
from shotwatch.storage.tables import IncidentShotRow, PulseAudioRow, ShotPulseRow

RECORD_CLASS = "sensor_audio"
#: review states whose incidents keep their snippets past the period
KEPT_STATES = (ReviewState.OPEN.value, ReviewState.CONFIRMED.value)


@dataclass(frozen=True)
class AudioRule:
    rule_id: str
    policy_id: str
    period_s: float


def sensor_audio_rule(policies: Sequence[PolicyFile]) -> AudioRule | None:
    """The shortest ``sensor_audio`` period among the deployment's policies (``after_creation``
    rules), or None when no policy limits it."""
    found: list[tuple[Retention, str]] = [
        (r, p.policy.id)
        for p in policies
        for r in p.retention
        if r.record_class == RECORD_CLASS and r.clock == "after_creation" and r.period_s
    ]
    if not found:
        return None
    r, pid = min(found, key=lambda rp: rp[0].period_s or 0)
    return AudioRule(r.id, pid, float(r.period_s or 0))


def purge_sensor_audio(session: Session, *, now_s: float, period_s: float, root: Path) -> int:
    """Delete the snippets (files under ``root`` and index rows) that began more than
    ``period_s`` before ``now_s`` and belong to no kept incident (:data:`KEPT_STATES`, or
    an active legal hold naming the incident); returns how many went."""
    reviewed = select(ReviewRecordRow.incident_id).where(ReviewRecordRow.state.in_(KEPT_STATES))
    held = select(LegalHoldRow.incident_id).where(
        LegalHoldRow.incident_id.is_not(None), LegalHoldRow.released_at_s.is_(None)
    )
    kept_pulses = (
        select(ShotPulseRow.pulse_id)
        .join(IncidentShotRow, IncidentShotRow.shot_id == ShotPulseRow.shot_id)
        .where(
            or_(IncidentShotRow.incident_id.in_(reviewed), IncidentShotRow.incident_id.in_(held))
        )
    )
    due = session.scalars(
        select(PulseAudioRow.pulse_id).where(
            PulseAudioRow.start_s < now_s - period_s, PulseAudioRow.pulse_id.not_in(kept_pulses)
        )
    ).all()
    return delete_pulse_audio(due, session=session, root=root)
