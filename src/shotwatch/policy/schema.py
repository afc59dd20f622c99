"""The schema of a policy file, and the loader that validates them all at start-up.

A policy file (TOML, one per technology and agency) holds the rules of one published use
policy as data: who may do what (``[[permit]]``), what is never allowed (``[[forbid]]``), the
disclosure conditions, retention, training, sanctions, and the statements that bind people
rather than software. Every rule carries the sentence of the policy it comes from, so the
published document can be regenerated from the running configuration (``policy render``).

A bad file fails start-up with an :class:`~shotwatch.core.errors.InputError` naming the file
and the field (``rules[3].roles``, ...), and every other file is still checked so all the
problems are reported at once (:class:`PolicyFileErrors`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shotwatch.core.errors import InputError
from shotwatch.policy.actions import Action, UnregisteredAction, action_from_value

PACKAGED_DIR = "policies"

FORBID_KINDS = Literal[
    "purpose",
    "purpose_not_in",
    "resource_flag",
    "remote",
    "remote_without_second_factor",
    "resource_kind",
    "subject_category",
    "disclosure_basis",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    text: str = Field(description="What the policy says about this role.")


class Rule(_Model):
    id: str = Field(pattern=r"^[A-Z][A-Z0-9-]+$")
    section: str
    text: str = Field(min_length=10, description="The policy's own words for this rule.")


class Permit(Rule):
    """Grants ``actions`` to ``roles`` when every listed condition holds."""

    actions: list[str] = Field(min_length=1)
    roles: list[str] = Field(min_length=1)
    min_rank: str | None = None
    resource_kinds: list[str] = Field(default_factory=list)
    own_command: bool = False
    articulable_need: bool = False
    requires_training: bool = True
    requires_access_grant: bool = True
    workstation_allow_list: bool = False
    max_age_s: int | None = Field(default=None, gt=0)
    resource_attrs: dict[str, bool] = Field(default_factory=dict)
    bureaus: list[str] = Field(default_factory=list)
    purposes: list[str] = Field(
        default_factory=list, description="Narrower purposes than the policy's list."
    )


class Forbid(Rule):
    """Denies, whatever any permit says (Cedar: forbid overrides permit)."""

    kind: FORBID_KINDS
    actions: list[str] = Field(default_factory=list, description="Empty: every action.")
    purposes: list[str] = Field(default_factory=list)
    flag: str | None = None
    except_bureaus: list[str] = Field(default_factory=list)
    except_roles: list[str] = Field(default_factory=list)
    except_purposes: list[str] = Field(default_factory=list)
    resource_kinds: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Forbid:
        need = {
            "purpose": "purposes",
            "purpose_not_in": "purposes",
            "resource_flag": "flag",
            "resource_kind": "resource_kinds",
            "subject_category": "categories",
        }.get(self.kind)
        if need and not getattr(self, need):
            raise ValueError(f"forbid of kind {self.kind!r} needs {need!r}")
        return self


class DisclosureBasis(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str
    needs_privacy_officer_approval: bool


class Disclosure(Rule):
    """External disclosure of identifying information: only on one of ``bases``."""

    bases: list[DisclosureBasis] = Field(min_length=1)


RETENTION_CLOCKS = Literal[
    "after_creation",
    "after_close",
    "permanent",
    "until_age",
    "evidence",
    "visibility",
    "personal_data_file",
]


class Retention(Rule):
    """How long one class of record is kept, and from when the clock runs."""

    record_class: str
    classifications: list[str] = Field(default_factory=list)
    clock: RETENTION_CLOCKS
    period_s: int | None = Field(default=None, gt=0)
    years: int | None = Field(default=None, gt=0)
    age_years: int | None = Field(default=None, gt=0)
    after_death_years: int | None = Field(default=None, gt=0)
    birth_years: int | None = Field(default=None, gt=0)
    no_arrest_years: int | None = Field(default=None, gt=0)
    default: bool = Field(False, description="Applies to classifications no other rule names.")

    @model_validator(mode="after")
    def _fields_for_clock(self) -> Retention:
        need: dict[str, tuple[str, ...]] = {
            "after_creation": ("period_s",),
            "visibility": ("period_s",),
            "after_close": ("years",),
            "until_age": ("age_years",),
            "personal_data_file": ("after_death_years", "birth_years", "no_arrest_years"),
        }
        for name in need.get(self.clock, ()):
            if getattr(self, name) is None:
                raise ValueError(f"retention clock {self.clock!r} needs {name!r}")
        return self


class Training(Rule):
    acknowledgment_required: bool = True
    authorized_uses: list[str] = Field(min_length=1)
    prohibited_uses: list[str] = Field(min_length=1)


class Sanction(_Model):
    offense: int = Field(ge=1)
    measure: str


class Sanctions(Rule):
    steps: list[Sanction] = Field(default_factory=list)


class FocusedAudit(Rule):
    requesters: list[str] = Field(min_length=1, description="Roles who may request one.")


class Statement(Rule):
    """A rule about people or the vendor that software cannot enforce; ``recorded_by`` says
    what ShotWatch records or shows about it (or why nothing)."""

    recorded_by: str


class Closure(Rule):
    reasons: list[str] = Field(min_length=1)


class PolicyMeta(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]+$")
    agency: str
    technology: str
    title: str
    document_kind: Literal["impact_and_use", "surveillance_technology"]
    source: str
    adopted: date
    summary: str


class PolicyFile(_Model):
    policy: PolicyMeta
    ranks: list[str] = Field(min_length=1, description="Lowest first.")
    roles: list[Role] = Field(min_length=1)
    bureaus: list[str] = Field(default_factory=list)
    purposes: list[str] = Field(min_length=1, description="Purposes accepted as legitimate.")
    workstations: list[str] = Field(default_factory=list)
    permit: list[Permit] = Field(min_length=1)
    forbid: list[Forbid] = Field(default_factory=list)
    disclosure: Disclosure | None = None
    retention: list[Retention] = Field(default_factory=list)
    case_closure: Closure | None = None
    training: Training
    sanctions: Sanctions | None = None
    focused_audit: FocusedAudit | None = None
    statement: list[Statement] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_references(self) -> PolicyFile:
        roles = {r.name for r in self.roles}
        problems: list[str] = []
        ids = [r.id for r in self.all_rules()]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            problems.append(f"rule ids used twice: {dupes}")
        for i, p in enumerate(self.permit):
            where = f"permit[{i}] ({p.id})"
            for r in p.roles:
                if r not in roles:
                    problems.append(f"{where}.roles: unknown role {r!r}")
            if p.min_rank is not None and p.min_rank not in self.ranks:
                problems.append(f"{where}.min_rank: unknown rank {p.min_rank!r}")
            if p.workstation_allow_list and not self.workstations:
                problems.append(f"{where}.workstation_allow_list: no workstations listed")
            for u in p.purposes:
                if u not in self.purposes:
                    problems.append(f"{where}.purposes: unknown purpose {u!r}")
            for b in p.bureaus:
                if b not in self.bureaus:
                    problems.append(f"{where}.bureaus: unknown bureau {b!r}")
            for a in p.actions:
                try:
                    action = action_from_value(a)
                except UnregisteredAction as exc:
                    problems.append(f"{where}.actions: {exc}")
                    continue
                if action.spec.sensitive and not p.articulable_need:
                    problems.append(
                        f"{where}.articulable_need: {a!r} touches sensitive data, so the "
                        "rule must require a purpose and a case or incident reference"
                    )
        for i, f in enumerate(self.forbid):
            where = f"forbid[{i}] ({f.id})"
            for a in f.actions:
                try:
                    action_from_value(a)
                except UnregisteredAction as exc:
                    problems.append(f"{where}.actions: {exc}")
            for r in f.except_roles:
                if r not in roles:
                    problems.append(f"{where}.except_roles: unknown role {r!r}")
            for b in f.except_bureaus:
                if b not in self.bureaus:
                    problems.append(f"{where}.except_bureaus: unknown bureau {b!r}")
        if self.focused_audit:
            for r in self.focused_audit.requesters:
                if r not in roles:
                    problems.append(f"focused_audit.requesters: unknown role {r!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def all_rules(self) -> list[Rule]:
        out: list[Rule] = [*self.permit, *self.forbid, *self.retention, *self.statement]
        for extra in (
            self.disclosure,
            self.case_closure,
            self.training,
            self.sanctions,
            self.focused_audit,
        ):
            if extra is not None:
                out.append(extra)
        return out

    def rank_level(self, rank: str) -> int:
        return self.ranks.index(rank)

    def role(self, name: str) -> Role:
        for r in self.roles:
            if r.name == name:
                return r
        raise KeyError(name)

    def permits_for(self, action: Action) -> list[Permit]:
        return [p for p in self.permit if action.spec.value in p.actions]


class PolicyFileErrors(InputError):
    """Several policy files (or fields) are wrong; ``errors`` lists each one."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.where, first.field, first.reason)
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def _field_of(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def parse_policy(text: str, where: str) -> PolicyFile:
    """One policy file's text, validated; errors name ``where`` and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(where, "(toml)", f"not valid TOML: {exc}") from exc
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        errors = [InputError(where, _field_of(tuple(e["loc"])), e["msg"]) for e in exc.errors()]
        raise PolicyFileErrors(errors) from exc


def packaged_policy_texts() -> list[tuple[str, str]]:
    """(name, text) of every policy file shipped inside the package."""
    folder = resources.files("shotwatch.policy").joinpath(PACKAGED_DIR)
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out.append((f"shotwatch/policy/{PACKAGED_DIR}/{entry.name}", entry.read_text("utf-8")))
    return out


def load_policies(directory: str | Path | None = None) -> list[PolicyFile]:
    """Every policy file (the packaged ones, or ``directory``'s), all validated.

    All files are checked before failing, and the error lists every problem found.
    """
    if directory is None:
        texts = packaged_policy_texts()
    else:
        d = Path(directory)
        if not d.is_dir():
            raise InputError(str(d), "policy_dir", "not a directory")
        texts = [(str(p), p.read_text("utf-8")) for p in sorted(d.glob("*.toml"))]
    if not texts:
        raise InputError(str(directory or PACKAGED_DIR), "policy_dir", "no *.toml policy files")
    policies: list[PolicyFile] = []
    errors: list[InputError] = []
    seen: dict[str, str] = {}
    for where, text in texts:
        try:
            pol = parse_policy(text, where)
        except PolicyFileErrors as exc:
            errors.extend(exc.errors)
            continue
        except InputError as exc:
            errors.append(exc)
            continue
        if pol.policy.id in seen:
            errors.append(
                InputError(
                    where, "policy.id", f"{pol.policy.id!r} already used by {seen[pol.policy.id]}"
                )
            )
            continue
        seen[pol.policy.id] = where
        policies.append(pol)
    all_ids: dict[str, str] = {}
    for pol in policies:
        for rule in pol.all_rules():
            if rule.id in all_ids and all_ids[rule.id] != pol.policy.id:
                errors.append(
                    InputError(pol.policy.id, "rule id", f"{rule.id!r} also in {all_ids[rule.id]}")
                )
            all_ids[rule.id] = pol.policy.id
    if errors:
        raise PolicyFileErrors(errors)
    return policies


def policy_by_id(policies: Iterable[PolicyFile], policy_id: str) -> PolicyFile:
    for p in policies:
        if p.policy.id == policy_id:
            return p
    raise InputError("policies", "policy", f"no policy with id {policy_id!r}")
