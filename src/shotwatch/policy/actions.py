"""The registered actions: every permission check names one of these, and nothing else.

Each action is a frozen :class:`ActionSpec` with a distinct string value, the kind of audit
event it produces, and whether it touches sensitive data (searching or viewing it needs an
articulable need: a purpose and a case or incident reference). Checking an action that is not
registered raises :class:`UnregisteredAction` instead of being silently allowed or denied.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AuditKind(enum.StrEnum):
    """What an audit entry records (the policies ask for each of these to be auditable)."""

    LOGIN = "login"
    SEARCH = "search"
    VIEW = "view"
    CHANGE = "change"
    EXPORT = "export"
    DISCLOSURE = "disclosure"
    ADMIN = "admin"
    DISPOSAL = "disposal"
    DENIED = "denied"


@dataclass(frozen=True)
class ActionSpec:
    """One permission: its value (used in policy files and Cedar), audit kind and help."""

    value: str
    audit: AuditKind
    sensitive: bool
    help: str


class Action(enum.Enum):
    """Every action a route or command may ask :func:`shotwatch.policy.engine.decide` about."""

    LOGIN = ActionSpec("auth.login", AuditKind.LOGIN, False, "Sign in to ShotWatch.")
    INCIDENT_SEARCH = ActionSpec(
        "incident.search", AuditKind.SEARCH, True, "Search confirmed gunfire incident data."
    )
    INCIDENT_VIEW = ActionSpec(
        "incident.view", AuditKind.VIEW, True, "View one incident (location, shots, audio clip)."
    )
    INCIDENT_CHANGE = ActionSpec(
        "incident.change", AuditKind.CHANGE, False, "Review or annotate an incident."
    )
    INCIDENT_DISPATCH = ActionSpec(
        "incident.dispatch", AuditKind.CHANGE, False, "Enter an activation into CAD as a call."
    )
    AUDIO_LISTEN = ActionSpec(
        "audio.listen", AuditKind.VIEW, True, "Listen to audio kept on a sensor (30 h buffer)."
    )
    MEDIA_INGEST = ActionSpec(
        "media.ingest", AuditKind.CHANGE, False, "Add a photo, video or recording to a record."
    )
    RECORD_EXPORT = ActionSpec(
        "record.export", AuditKind.EXPORT, True, "Export records (files, reports, evidence)."
    )
    RECORD_DISCLOSE = ActionSpec(
        "record.disclose", AuditKind.DISCLOSURE, True, "Disclose identifying data externally."
    )
    AUDIT_READ = ActionSpec(
        "audit.read", AuditKind.VIEW, False, "Read the audit log and its proofs."
    )
    AUDIT_FOCUSED = ActionSpec(
        "audit.focused", AuditKind.SEARCH, False, "Run a focused audit (user, item, period)."
    )
    RETENTION_PLAN = ActionSpec(
        "retention.plan", AuditKind.VIEW, False, "See what retention would dispose and why."
    )
    RETENTION_HOLD = ActionSpec(
        "retention.hold", AuditKind.CHANGE, False, "Place or release a legal hold."
    )
    RETENTION_APPROVE = ActionSpec(
        "retention.approve", AuditKind.DISPOSAL, False, "Approve the disposal of records."
    )
    IDENTITY_ADMIN = ActionSpec(
        "identity.admin", AuditKind.ADMIN, False, "Manage users, assignments and access."
    )
    POLICY_VIEW = ActionSpec("policy.view", AuditKind.VIEW, False, "Read the published use policy.")

    @property
    def value_str(self) -> str:
        return self.value.value

    @property
    def spec(self) -> ActionSpec:
        return self.value


class UnregisteredAction(LookupError):
    """A permission check named an action that is not in :class:`Action`."""


_BY_VALUE: dict[str, Action] = {}
for _a in Action:
    if _a.value.value in _BY_VALUE:  # pragma: no cover - guarded by a test too
        raise RuntimeError(f"two actions share the value {_a.value.value!r}")
    _BY_VALUE[_a.value.value] = _a


def action_from_value(value: str) -> Action:
    """The registered action with this value; :class:`UnregisteredAction` otherwise."""
    try:
        return _BY_VALUE[value]
    except KeyError:
        raise UnregisteredAction(f"action {value!r} is not registered") from None


def require_registered(action: object) -> Action:
    """``action`` itself if it is a registered :class:`Action`, else raise."""
    if isinstance(action, Action) and _BY_VALUE.get(action.value.value) is action:
        return action
    if isinstance(action, str):
        return action_from_value(action)
    raise UnregisteredAction(f"{action!r} is not a registered action")
