"""Retention rules as data: when may a record go, under which rule, and why (pure functions).

The rules come from the policy files' ``[[retention]]`` tables. A record is matched first in
its own policy, then in any policy of the same agency (the NYPD files share the New York
schedule, which lives in the electronic record management policy). Clocks:

* ``after_creation`` / ``visibility``: ``period_s`` after the record was made (sensor audio
  30 h; SF DEM can see an incident for 7 days, after which it is hidden, not destroyed);
* ``after_close``: ``years`` after the case closed, and only if it closed for a reason the
  policy accepts as closure;
* ``until_age``: until the subject (the child, the juvenile) reaches ``age_years``;
* ``personal_data_file``: the shorter of 5 years after death, or 90 years after birth once
  there has been no arrest for 5 years;
* ``permanent`` and ``evidence``: kept (confirmed-incident audio is evidence).

Legal holds block disposal whatever the rule says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from shotwatch.core.errors import InputError
from shotwatch.policy.schema import Closure, PolicyFile, Retention


@dataclass(frozen=True)
class RecordFacts:
    record_id: str
    policy_id: str
    record_class: str
    created_at: datetime
    classification: str = ""
    closed_at: datetime | None = None
    closure_reason: str = ""
    subject_birth: date | None = None
    subject_death: date | None = None
    last_arrest: date | None = None
    on_hold: bool = False
    disposed: bool = False


@dataclass(frozen=True)
class Disposition:
    record_id: str
    rule_id: str
    action: str  # dispose | hide | keep | hold
    due: datetime | None
    reason: str


def add_years(d: datetime, years: int) -> datetime:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February in a non-leap target year
        return d.replace(year=d.year + years, day=28)


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def find_rule(
    facts: RecordFacts, policies: Sequence[PolicyFile]
) -> tuple[Retention, Closure | None]:
    own = [p for p in policies if p.policy.id == facts.policy_id]
    if not own:
        raise InputError(
            f"record {facts.record_id}", "policy_id", f"unknown policy {facts.policy_id!r}"
        )
    agency = own[0].policy.agency
    ordered = own + [p for p in policies if p.policy.agency == agency and p is not own[0]]
    for pol in ordered:
        rules = [r for r in pol.retention if r.record_class == facts.record_class]
        if not rules:
            continue
        named = [
            r for r in rules if facts.classification and facts.classification in r.classifications
        ]
        unclassified = [r for r in rules if not r.classifications]
        pick = named or unclassified or [r for r in rules if r.default]
        if pick:
            return pick[0], pol.case_closure
        raise InputError(
            f"record {facts.record_id}",
            "classification",
            f"{facts.classification!r} matches no {facts.record_class} rule of {pol.policy.id} "
            f"(known: {sorted({c for r in rules for c in r.classifications})})",
        )
    raise InputError(
        f"record {facts.record_id}",
        "record_class",
        f"no retention rule for {facts.record_class!r} in {agency} policies",
    )


def disposition(facts: RecordFacts, policies: Sequence[PolicyFile]) -> Disposition:
    """When and why this record may go (``due`` is None when it must be kept)."""
    rule, closure = find_rule(facts, policies)
    rid = rule.id
    if rule.clock in ("permanent", "evidence"):
        why = "retained permanently" if rule.clock == "permanent" else "kept as evidence"
        return Disposition(facts.record_id, rid, "keep", None, why)
    due: datetime
    if rule.clock in ("after_creation", "visibility"):
        assert rule.period_s is not None
        due = facts.created_at + timedelta(seconds=rule.period_s)
        why = f"{rule.period_s / 3600:g} h after it was recorded"
    elif rule.clock == "after_close":
        assert rule.years is not None
        if facts.closed_at is None:
            return Disposition(
                facts.record_id, rid, "keep", None, "case not closed; the clock starts at closure"
            )
        if closure is not None and facts.closure_reason not in closure.reasons:
            return Disposition(
                facts.record_id,
                rid,
                "keep",
                None,
                f"closure reason {facts.closure_reason!r} is not a closure under {closure.id} "
                f"({', '.join(closure.reasons)})",
            )
        due = add_years(facts.closed_at, rule.years)
        why = f"{rule.years} years after the case closed ({facts.closed_at.date()})"
    elif rule.clock == "until_age":
        assert rule.age_years is not None
        if facts.subject_birth is None:
            raise InputError(
                f"record {facts.record_id}",
                "subject_birth",
                f"{rid} needs the subject's date of birth",
            )
        due = add_years(_midnight(facts.subject_birth), rule.age_years)
        why = f"until the subject reaches {rule.age_years} (born {facts.subject_birth})"
    elif rule.clock == "personal_data_file":
        assert rule.after_death_years and rule.birth_years and rule.no_arrest_years
        options: list[tuple[datetime, str]] = []
        if facts.subject_death is not None:
            options.append(
                (
                    add_years(_midnight(facts.subject_death), rule.after_death_years),
                    f"{rule.after_death_years} years after death",
                )
            )
        if facts.subject_birth is not None:
            t = add_years(_midnight(facts.subject_birth), rule.birth_years)
            if facts.last_arrest is not None:
                t = max(t, add_years(_midnight(facts.last_arrest), rule.no_arrest_years))
            options.append(
                (
                    t,
                    f"{rule.birth_years} years after birth with no arrest "
                    f"in the last {rule.no_arrest_years}",
                )
            )
        if not options:
            raise InputError(
                f"record {facts.record_id}",
                "subject_birth",
                f"{rid} needs a date of birth or death",
            )
        due, why = min(options)
        why += " (whichever is shorter)"
    else:  # pragma: no cover - the schema admits no other clock
        raise InputError(rid, "clock", rule.clock)
    action = "hide" if rule.clock == "visibility" else "dispose"
    if facts.on_hold and action == "dispose":
        return Disposition(
            facts.record_id, rid, "hold", due, f"legal hold (rule would allow disposal: {why})"
        )
    return Disposition(facts.record_id, rid, action, due, why)


@dataclass(frozen=True)
class Plan:
    as_of: datetime
    due: list[Disposition]
    held: list[Disposition]
    errors: list[InputError]


def plan(records: Sequence[RecordFacts], policies: Sequence[PolicyFile], as_of: datetime) -> Plan:
    """What would go on ``as_of`` and why; held records and bad records are listed, not dropped."""
    due: list[Disposition] = []
    held: list[Disposition] = []
    errors: list[InputError] = []
    for facts in records:
        if facts.disposed:
            continue
        try:
            d = disposition(facts, policies)
        except InputError as exc:
            errors.append(exc)
            continue
        if d.due is None or d.due > as_of:
            continue
        (held if d.action == "hold" else due).append(d)
    return Plan(as_of, due, held, errors)
