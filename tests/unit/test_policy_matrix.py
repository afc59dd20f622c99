"""The authorization matrix: every role x action x situation of every policy file.

Expected answers come from a plain-Python reading of the rule text (the TOML read with
tomllib, not through the engine or its schema), so the Cedar translation is checked against
an independent twin, including which rules decided.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import replace
from importlib import resources
from typing import Any

import pytest

from shotwatch.policy.actions import Action
from shotwatch.policy.engine import Actor, Context, Resource, default_engine

NOW_S = 1_800_000_000.0
HOUR_S = 3600.0


def raw_policies() -> list[dict[str, Any]]:
    folder = resources.files("shotwatch.policy").joinpath("policies")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out.append(tomllib.loads(entry.read_text("utf-8")))
    return out


# ---- the reference twin: the rules as a person reads them ---------------------------------


def permit_holds(  # noqa: PLR0917
    pol: dict[str, Any], p: dict[str, Any], a: Actor, act: str, r: Resource, c: Context
) -> bool:
    pid = pol["policy"]["id"]
    if act not in p["actions"] or r.policy != pid or a.agency != pol["policy"]["agency"]:
        return False
    if not a.active or a.role not in p["roles"]:
        return False
    if "min_rank" in p and pol["ranks"].index(a.rank) < pol["ranks"].index(p["min_rank"]):
        return False
    if p.get("bureaus") and a.bureau not in p["bureaus"]:
        return False
    if p.get("resource_kinds") and r.kind not in p["resource_kinds"]:
        return False
    if p.get("own_command") and a.command != r.command:
        return False
    if p.get("requires_access_grant", True) and pid not in a.access:
        return False
    if p.get("requires_training", True) and pid not in a.trained:
        return False
    if p.get("articulable_need"):
        purposes = p.get("purposes") or pol["purposes"]
        if c.purpose not in purposes or not c.reference:
            return False
    if p.get("workstation_allow_list") and c.workstation not in pol["workstations"]:
        return False
    if (
        "max_age_s" in p
        and r.created_at_s is not None
        and c.now_s - r.created_at_s > p["max_age_s"]
    ):
        return False
    return all(r.attrs.get(k) == v for k, v in p.get("resource_attrs", {}).items())


def forbid_holds(  # noqa: PLR0917
    pol: dict[str, Any], f: dict[str, Any], a: Actor, act: str, r: Resource, c: Context
) -> bool:
    if r.policy != pol["policy"]["id"]:
        return False
    if f.get("actions") and act not in f["actions"]:
        return False
    if a.bureau in f.get("except_bureaus", []) or a.role in f.get("except_roles", []):
        return False
    kind = f["kind"]
    if kind == "purpose":
        return c.purpose in f["purposes"]
    if kind == "purpose_not_in":
        return c.purpose != "" and c.purpose not in f["purposes"]
    if kind == "resource_flag":
        return f["flag"] in r.flags
    if kind == "remote":
        return c.remote
    if kind == "remote_without_second_factor":
        return c.remote and not c.second_factor
    if kind == "resource_kind":
        return r.kind in f["resource_kinds"]
    if kind == "subject_category":
        return r.subject_category in f["categories"]
    if kind == "disclosure_basis":
        bases = {b["id"]: b["needs_privacy_officer_approval"] for b in pol["disclosure"]["bases"]}
        if c.disclosure_basis not in bases:
            return True
        return bases[c.disclosure_basis] and not c.privacy_officer_approval
    raise AssertionError(kind)


def expected(
    pol: dict[str, Any], a: Actor, act: str, r: Resource, c: Context
) -> tuple[bool, set[str]]:
    forbids = {f["id"] for f in pol.get("forbid", []) if forbid_holds(pol, f, a, act, r, c)}
    permits = {p["id"] for p in pol["permit"] if permit_holds(pol, p, a, act, r, c)}
    if forbids:
        return False, forbids
    return bool(permits), permits


# ---- the situations -----------------------------------------------------------------------


def base_case(pol: dict[str, Any], role: str, act: str) -> tuple[Actor, Resource, Context]:
    pid = pol["policy"]["id"]
    cands = [p for p in pol["permit"] if act in p["actions"] and role in p["roles"]]
    p = cands[0] if cands else {}
    bureau = (p.get("bureaus") or pol.get("bureaus") or [""])[0]
    actor = Actor(
        user_id=f"{role}-1",
        agency=pol["policy"]["agency"],
        role=role,
        rank=pol["ranks"][-1],
        command="cmd-A",
        bureau=bureau,
        access=frozenset({pid}),
        trained=frozenset({pid}),
    )
    resource = Resource(
        resource_id="res-1",
        policy=pid,
        kind=(p.get("resource_kinds") or ["incident"])[0],
        command="cmd-A",
        created_at_s=NOW_S - HOUR_S,
        attrs=dict(p.get("resource_attrs", {})),
    )
    ctx = Context(
        now_s=NOW_S,
        purpose=(p.get("purposes") or pol["purposes"])[0],
        reference="CASE-2021-000123",
        workstation=(pol.get("workstations") or [""])[0],
        disclosure_basis="crime_investigation",
    )
    return actor, resource, ctx


SITUATIONS = [
    "base",
    "other_command",
    "transferred",
    "untrained",
    "remote_without_second_factor",
    "remote_with_second_factor",
    "unlisted_workstation",
    "expired_window",
    "immigration_purpose",
    "no_reference",
    "lowest_rank",
    "political_activity",
    "political_activity_intelligence",
    "disclosure_unapproved",
    "prohibited_subject",
    "inactive_account",
]


def situation(name: str, a: Actor, r: Resource, c: Context) -> tuple[Actor, Resource, Context]:
    if name == "other_command":
        r = replace(r, command="cmd-B")
    elif name == "transferred":
        a = replace(a, command="cmd-B", access=frozenset())
    elif name == "untrained":
        a = replace(a, trained=frozenset())
    elif name == "remote_without_second_factor":
        c = replace(c, remote=True, second_factor=False)
    elif name == "remote_with_second_factor":
        c = replace(c, remote=True, second_factor=True)
    elif name == "unlisted_workstation":
        c = replace(c, workstation="HOME-PC-7")
    elif name == "expired_window":
        r = replace(r, created_at_s=NOW_S - 8 * 86400)
    elif name == "immigration_purpose":
        c = replace(c, purpose="immigration_enforcement")
    elif name == "no_reference":
        c = replace(c, reference="")
    elif name == "lowest_rank":
        a = replace(a, rank=RANKS[a.agency][0])
    elif name == "political_activity":
        r = replace(r, flags=frozenset({"political_activity"}))
        a = replace(a, bureau="patrol" if a.bureau == "intelligence" else a.bureau)
    elif name == "political_activity_intelligence":
        r = replace(r, flags=frozenset({"political_activity"}))
        a = replace(a, bureau="intelligence")
    elif name == "disclosure_unapproved":
        c = replace(c, disclosure_basis="furthers_mission", privacy_officer_approval=False)
    elif name == "prohibited_subject":
        r = replace(r, subject_category="confidential_informant")
    elif name == "inactive_account":
        a = replace(a, active=False)
    return a, r, c


RAW = raw_policies()
RANKS = {p["policy"]["agency"]: p["ranks"] for p in RAW}


def matrix() -> Iterator[tuple[dict[str, Any], str, Action, str]]:
    for pol in RAW:
        for role in [r["name"] for r in pol["roles"]]:
            for action in Action:
                for name in SITUATIONS:
                    yield pol, role, action, name


def test_matrix_has_no_wrong_answer() -> None:
    engine = default_engine()
    wrong: list[str] = []
    allowed = denied = 0
    for pol, role, action, name in matrix():
        a, r, c = situation(name, *base_case(pol, role, action.spec.value))
        want, want_rules = expected(pol, a, action.spec.value, r, c)
        got = engine.decide(a, action, r, c)
        if got.allow != want or set(got.rules) != want_rules:
            wrong.append(
                f"{pol['policy']['id']} {role} {action.spec.value} {name}: want {want} "
                f"{sorted(want_rules)}, got {got.allow} {sorted(got.rules)} ({got.reason})"
            )
        allowed += got.allow
        denied += not got.allow
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong[:20])
    # The matrix must exercise both outcomes in bulk, or it proves nothing.
    assert allowed > 100 and denied > 1000


@pytest.mark.parametrize("pol", RAW, ids=[p["policy"]["id"] for p in RAW])
def test_every_permit_rule_allows_something_in_the_matrix(pol: dict[str, Any]) -> None:
    engine = default_engine()
    fired: set[str] = set()
    for role in [r["name"] for r in pol["roles"]]:
        for action in Action:
            a, r, c = base_case(pol, role, action.spec.value)
            fired.update(engine.decide(a, action, r, c).rules)
    assert {p["id"] for p in pol["permit"]} <= fired


def test_key_rules_from_the_text() -> None:
    """A few answers spelled out by hand from the policies' sentences."""
    e = default_engine()
    ss = "nypd-shotspotter"
    det = Actor(
        "d1",
        "NYPD",
        "investigator",
        "detective",
        "pct-75",
        "detective",
        access=frozenset({ss}),
        trained=frozenset({ss}),
    )
    inc = Resource("i1", ss, "incident", "pct-75", created_at_s=NOW_S - 60)
    need = Context(NOW_S, purpose="criminal_investigation", reference="I-1")
    assert e.decide(det, Action.INCIDENT_VIEW, inc, need).allow
    # immigration: hard deny even with everything else in order
    assert not e.decide(
        det, Action.INCIDENT_VIEW, inc, replace(need, purpose="immigration_enforcement")
    ).allow
    # NYPD personnel cannot access the audio retained in ShotSpotter sensors
    audio = Resource("a1", ss, "sensor_audio", "pct-75", created_at_s=NOW_S - 60)
    d = e.decide(det, Action.AUDIO_LISTEN, audio, need)
    assert not d.allow and "NYPD-SS-NO-SENSOR-AUDIO" in d.rules
    # SF: supervisors only from the four supervisor workstations, only within the week
    sf = "sf-dem-gunshot-detection"
    sup = Actor(
        "s1",
        "SF-DEM",
        "supervisor",
        "public_safety_supervisor_8239",
        "dec",
        access=frozenset({sf}),
        trained=frozenset({sf}),
    )
    sfi = Resource("i2", sf, "incident", "dec", created_at_s=NOW_S - 6 * 86400)
    at_ws = Context(NOW_S, purpose="dispatch", reference="I-2", workstation="DEM-SUP-WS-3")
    assert e.decide(sup, Action.INCIDENT_VIEW, sfi, at_ws).allow
    assert not e.decide(
        sup, Action.INCIDENT_VIEW, sfi, replace(at_ws, workstation="DEM-DISP-12")
    ).allow
    old = replace(sfi, created_at_s=NOW_S - 8 * 86400)
    assert not e.decide(sup, Action.INCIDENT_VIEW, old, at_ws).allow
    # political activity: Intelligence Bureau only
    erms = "nypd-electronic-record-management"
    rec = Resource("c1", erms, "case_record", "pct-75", flags=frozenset({"political_activity"}))
    inv = replace(det, access=frozenset({erms}), trained=frozenset({erms}))
    assert not e.decide(inv, Action.INCIDENT_VIEW, rec, need).allow
    intel = replace(inv, role="intelligence_investigator", bureau="intelligence")
    assert e.decide(intel, Action.INCIDENT_VIEW, rec, need).allow
