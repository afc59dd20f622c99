"""Incident review as commands with outcomes (SeisComP journal style). Pure core.

A reviewer never edits an incident. Each action is a named command with a required reason,
answered :class:`Outcome` OK or Failed (with the reason it failed). An OK command that changes
the incident appends a NEW version whose provenance is manual, names its author and
``supersedes`` the version it replaces; the machine's version 1 stays as it was. Every command,
OK or Failed, is journalled, and :meth:`ReviewBook.history` lists all versions.

The queue orders open incidents by priority: escalated first, then multi-shot, then higher
gunfire probability, then earlier arrival. Review clocks run from arrival (when the incident
reached the queue) on the injected clock: time to first open and time to decision are kept
per incident for the review-time targets (90 % decided within 60 s, started within 15 s).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import Any

from shotwatch.core.errors import InputError
from shotwatch.core.geo import LocalFrame, check_latlon
from shotwatch.core.model import EvaluationStatus, Incident, Movement, Provenance

MIN_REASON_CHARS = 3


class ReviewState(enum.StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    #: the machine took back an incident it had shown while its shots were still forming
    #: (they did not stand); only before any reviewer decided it
    WITHDRAWN = "withdrawn"


class DismissKind(enum.StrEnum):
    FIREWORKS = "fireworks"
    OTHER = "other"


# --- commands --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every review command: who, and why."""

    author: str
    reason: str

    @property
    def name(self) -> str:
        return _NAMES[type(self)]

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k not in ("author", "reason")}


@dataclass(frozen=True, slots=True)
class ConfirmGunfire(Command):
    pass


@dataclass(frozen=True, slots=True)
class Dismiss(Command):
    kind: DismissKind = DismissKind.OTHER


@dataclass(frozen=True, slots=True)
class Relocate(Command):
    lat_deg: float = math.nan
    lon_deg: float = math.nan


@dataclass(frozen=True, slots=True)
class SetRounds(Command):
    rounds: int = 0


@dataclass(frozen=True, slots=True)
class SetShooters(Command):
    shooters: int = 0


@dataclass(frozen=True, slots=True)
class SetAutomatic(Command):
    automatic: bool = False


@dataclass(frozen=True, slots=True)
class SetMovement(Command):
    moving: bool = False
    heading_deg: float | None = None
    speed_mps: float | None = None


@dataclass(frozen=True, slots=True)
class AddNote(Command):
    text: str = ""


@dataclass(frozen=True, slots=True)
class Escalate(Command):
    to: str = "supervisor"


_NAMES: dict[type, str] = {
    ConfirmGunfire: "confirm",
    Dismiss: "dismiss",
    Relocate: "relocate",
    SetRounds: "set_rounds",
    SetShooters: "set_shooters",
    SetAutomatic: "set_automatic",
    SetMovement: "set_movement",
    AddNote: "add_note",
    Escalate: "escalate",
}
COMMANDS: dict[str, type[Command]] = {v: k for k, v in _NAMES.items()}


@dataclass(frozen=True, slots=True)
class Outcome:
    """OK or Failed, with the reason; ``version`` is the new version when one was made."""

    ok: bool
    command: str
    incident_id: str
    reason: str = ""
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "outcome": "OK" if self.ok else "Failed",
            "command": self.command,
            "incident_id": self.incident_id,
            "reason": self.reason,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class Version:
    """One version of an incident: the machine's (1) or a reviewer's."""

    number: int
    incident: Incident
    command: str | None
    reason: str
    author: str
    at_s: float

    @property
    def version_id(self) -> str:
        return version_id(self.incident.incident_id, self.number)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    at_s: float
    incident_id: str
    command: str
    author: str
    reason: str
    params: dict[str, Any]
    outcome: Outcome


@dataclass
class Record:
    """An incident under review: its versions and review clocks."""

    versions: list[Version]
    arrival_s: float
    state: ReviewState = ReviewState.OPEN
    escalated_to: str | None = None
    opened_s: float | None = None
    opened_by: str | None = None
    decided_s: float | None = None
    notes: list[tuple[float, str, str]] = field(default_factory=list)

    @property
    def current(self) -> Version:
        return self.versions[-1]

    @property
    def machine(self) -> Version:
        return self.versions[0]

    def clock_s(self, now_s: float) -> float:
        """Seconds since arrival, frozen at the decision."""
        end = self.decided_s if self.decided_s is not None else now_s
        return max(0.0, end - self.arrival_s)

    @property
    def time_to_open_s(self) -> float | None:
        return None if self.opened_s is None else self.opened_s - self.arrival_s

    @property
    def time_to_decision_s(self) -> float | None:
        return None if self.decided_s is None else self.decided_s - self.arrival_s


def version_id(incident_id: str, number: int) -> str:
    """The stored id of a version: the machine's keeps the incident id, later versions are
    ``<id>@v<n>`` (each version is its own row whose provenance supersedes the previous)."""
    return incident_id if number == 1 else f"{incident_id}@v{number}"


def is_multishot(inc: Incident) -> bool:
    return inc.rounds >= 2 or inc.shooters >= 2


def priority_key(rec: Record) -> tuple[int, int, float, float, str]:
    """Smaller sorts first: escalated, multi-shot, high probability, early arrival."""
    inc = rec.current.incident
    p = inc.gunfire_probability
    score = p if p is not None and math.isfinite(p) else 0.0
    return (
        0 if rec.escalated_to else 1,
        0 if is_multishot(inc) else 1,
        -score,
        rec.arrival_s,
        inc.incident_id,
    )


class ReviewBook:
    """All incidents under review (in memory; the service layer persists the journal)."""

    def __init__(self, frame: LocalFrame | None = None) -> None:
        self.frame = frame
        self.records: dict[str, Record] = {}
        self.journal: list[JournalEntry] = []

    # -- machine input ------------------------------------------------------------------

    def add_machine(self, incident: Incident, arrival_s: float) -> Version:
        """A new incident from the pipeline, or the pipeline's update of one it made earlier
        (appended as a new automatic version; reviewers' versions are kept)."""
        rec = self.records.get(incident.incident_id)
        if rec is None:
            v = Version(1, incident, None, "automatic", _author(incident), arrival_s)
            self.records[incident.incident_id] = Record([v], arrival_s)
            return v
        prev = rec.current
        n = prev.number + 1
        inc = replace(
            incident,
            provenance=replace(
                incident.provenance or Provenance.automatic("pipeline", "?", arrival_s),
                supersedes=prev.version_id,
            ),
        )
        v = Version(n, inc, None, "automatic update", _author(incident), arrival_s)
        rec.versions.append(v)
        if incident.extra.get("withdrawn"):
            if rec.state is ReviewState.OPEN:
                rec.state = ReviewState.WITHDRAWN
        elif rec.state is ReviewState.WITHDRAWN:
            rec.state = ReviewState.OPEN  # its shots came back after all
        return v

    # -- people -------------------------------------------------------------------------

    def mark_opened(self, incident_id: str, author: str, now_s: float) -> None:
        """A reviewer opened the incident: starts the 'review started' clock (first open only)."""
        rec = self.records.get(incident_id)
        if rec is not None and rec.opened_s is None:
            rec.opened_s = now_s
            rec.opened_by = author

    def submit(self, incident_id: str, cmd: Command, now_s: float) -> Outcome:
        """Apply one command; always returns an explicit outcome and journals it."""
        outcome = self._apply(incident_id, cmd, now_s)
        self.journal.append(
            JournalEntry(
                now_s, incident_id, cmd.name, cmd.author, cmd.reason, cmd.params(), outcome
            )
        )
        return outcome

    def _apply(self, incident_id: str, cmd: Command, now_s: float) -> Outcome:
        name = cmd.name

        def failed(why: str) -> Outcome:
            return Outcome(False, name, incident_id, why)

        rec = self.records.get(incident_id)
        if rec is None:
            return failed(f"no incident {incident_id!r}")
        if not cmd.author.strip():
            return failed("an author is required")
        if len(cmd.reason.strip()) < MIN_REASON_CHARS:
            return failed(f"a reason of at least {MIN_REASON_CHARS} characters is required")
        cur = rec.current.incident
        try:
            new, msg = self._transform(rec, cur, cmd, now_s)
        except InputError as exc:
            return failed(f"{exc.field}: {exc.reason}")
        if rec.opened_s is None:
            self.mark_opened(incident_id, cmd.author, now_s)
        if new is None:  # accepted, no new version (e.g. escalate)
            return Outcome(True, name, incident_id, msg, rec.current.number)
        n = rec.current.number + 1
        new = replace(
            new,
            provenance=Provenance.manual(cmd.author, now_s, supersedes=rec.current.version_id),
        )
        rec.versions.append(Version(n, new, name, cmd.reason.strip(), cmd.author, now_s))
        return Outcome(True, name, incident_id, msg, n)

    def _transform(
        self, rec: Record, cur: Incident, cmd: Command, now_s: float
    ) -> tuple[Incident | None, str]:
        reviewed = (
            EvaluationStatus.REVIEWED if cur.status is EvaluationStatus.PRELIMINARY else cur.status
        )
        if isinstance(cmd, ConfirmGunfire):
            if rec.state is ReviewState.CONFIRMED:
                raise InputError("confirm", "state", "already confirmed")
            rec.state = ReviewState.CONFIRMED
            rec.decided_s = now_s if rec.decided_s is None else rec.decided_s
            return replace(cur, status=EvaluationStatus.CONFIRMED, label="gunfire"), "confirmed"
        if isinstance(cmd, Dismiss):
            if rec.state is ReviewState.CONFIRMED:
                raise InputError(
                    "dismiss", "state", "a confirmed incident cannot be dismissed; escalate it"
                )
            if rec.state is ReviewState.DISMISSED:
                raise InputError("dismiss", "state", "already dismissed")
            kind = DismissKind(cmd.kind)
            rec.state = ReviewState.DISMISSED
            rec.decided_s = now_s if rec.decided_s is None else rec.decided_s
            return (
                replace(cur, status=EvaluationStatus.REJECTED, label=kind.value),
                f"dismissed as {kind.value}",
            )
        if rec.state is ReviewState.DISMISSED and not isinstance(cmd, AddNote | Escalate):
            raise InputError(cmd.name, "state", "dismissed incidents take notes only")
        if isinstance(cmd, Relocate):
            check_latlon(cmd.lat_deg, cmd.lon_deg, "relocate")
            x, y = cur.x_m, cur.y_m
            if self.frame is not None:
                x, y, _ = self.frame.to_local(cmd.lat_deg, cmd.lon_deg)
            return (
                replace(cur, lat_deg=cmd.lat_deg, lon_deg=cmd.lon_deg, x_m=x, y_m=y,
                        status=reviewed),
                f"moved to {cmd.lat_deg:.6f},{cmd.lon_deg:.6f}",
            )  # fmt: skip
        if isinstance(cmd, SetRounds):
            if not isinstance(cmd.rounds, int) or not 1 <= cmd.rounds <= 1000:
                raise InputError("set_rounds", "rounds", f"must be 1..1000, got {cmd.rounds!r}")
            return replace(cur, rounds=cmd.rounds, status=reviewed), f"rounds = {cmd.rounds}"
        if isinstance(cmd, SetShooters):
            if not isinstance(cmd.shooters, int) or not 1 <= cmd.shooters <= 50:
                raise InputError("set_shooters", "shooters", f"must be 1..50, got {cmd.shooters!r}")
            return (
                replace(cur, shooters=cmd.shooters, status=reviewed),
                f"shooters = {cmd.shooters}",
            )
        if isinstance(cmd, SetAutomatic):
            return (
                replace(cur, automatic=bool(cmd.automatic), status=reviewed),
                f"automatic = {bool(cmd.automatic)}",
            )
        if isinstance(cmd, SetMovement):
            if not cmd.moving:
                return replace(cur, movement=None, status=reviewed), "stationary"
            h, v = cmd.heading_deg, cmd.speed_mps
            if h is None or not math.isfinite(h):
                raise InputError("set_movement", "heading_deg", "required when moving")
            if v is not None and not (math.isfinite(v) and 0.0 < v <= 60.0):
                raise InputError("set_movement", "speed_mps", f"must be in (0, 60], got {v}")
            speed = v if v is not None else 1.5  # walking pace when the reviewer gives none
            dist = cur.movement.distance_m if cur.movement else 0.0
            return (
                replace(cur, movement=Movement(speed, h % 360.0, dist), status=reviewed),
                f"moving, heading {h % 360.0:.0f}°",
            )
        if isinstance(cmd, AddNote):
            text = cmd.text.strip()
            if not text:
                raise InputError("add_note", "text", "empty note")
            rec.notes.append((now_s, cmd.author, text))
            notes = [*list(cur.extra.get("notes", [])), {"author": cmd.author, "text": text}]  # type: ignore[call-overload]
            return replace(cur, extra={**cur.extra, "notes": notes}), "note added"
        if isinstance(cmd, Escalate):
            if not cmd.to.strip():
                raise InputError("escalate", "to", "required")
            rec.escalated_to = cmd.to.strip()
            return (
                replace(cur, extra={**cur.extra, "escalated_to": rec.escalated_to}),
                f"escalated to {rec.escalated_to}",
            )
        raise InputError(cmd.name, "command", "unknown command")

    # -- reading ------------------------------------------------------------------------

    def queue(self) -> list[Record]:
        """Open incidents in priority order."""
        return sorted(
            (r for r in self.records.values() if r.state is ReviewState.OPEN), key=priority_key
        )

    def history(self, incident_id: str) -> list[Version]:
        rec = self.records.get(incident_id)
        if rec is None:
            raise KeyError(incident_id)
        return list(rec.versions)

    def journal_for(self, incident_id: str) -> list[JournalEntry]:
        return [j for j in self.journal if j.incident_id == incident_id]


def make_command(name: str, author: str, reason: str, params: dict[str, Any]) -> Command:
    """Build a command from its name and parameters (API input), naming any bad field."""
    cls = COMMANDS.get(name)
    if cls is None:
        raise InputError("review command", "command", f"unknown {name!r}; known {sorted(COMMANDS)}")
    allowed = {k for k in cls.__slots__ if k not in ("author", "reason")}
    extra = set(params) - allowed
    if extra:
        raise InputError(f"review command {name}", sorted(extra)[0], "not a parameter of it")
    try:
        return cls(author=author, reason=reason, **params)
    except (TypeError, ValueError) as exc:
        raise InputError(f"review command {name}", "params", str(exc)) from exc


def _author(inc: Incident) -> str:
    p = inc.provenance
    return f"{p.algorithm}/{p.version}" if p else "pipeline"
