"""The New York schedule, the 30 h sensor buffer and the SF 7-day window, from the text."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shotwatch.core.errors import InputError
from shotwatch.policy.schema import load_policies
from shotwatch.records.retention import RecordFacts, disposition, plan

POL = load_policies()
ERMS = "nypd-electronic-record-management"
SS = "nypd-shotspotter"
T0 = datetime(2020, 3, 1, 12, 0, tzinfo=UTC)
CLOSED = datetime(2021, 6, 30, tzinfo=UTC)


def case(classification: str, **kw: object) -> RecordFacts:
    base: dict[str, object] = dict(
        record_id="c1",
        policy_id=SS,
        record_class="case_investigation",
        created_at=T0,
        classification=classification,
        closed_at=CLOSED,
        closure_reason="prosecution_appeals_exhausted",
    )
    base.update(kw)
    return RecordFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("classification", "years", "rule"),
    [
        ("felony", 25, "NYS-FELONY-25Y"),
        ("arson_4", 10, "NYS-ARSON4-NONFATAL-10Y"),
        ("non_fatal", 10, "NYS-ARSON4-NONFATAL-10Y"),
        ("misdemeanor", 5, "NYS-MISDEMEANOR-5Y"),
        ("no_offense_adult", 5, "NYS-NO-OFFENSE-ADULT-5Y"),
        ("violation", 1, "NYS-VIOLATION-1Y"),
        ("traffic_infraction", 1, "NYS-VIOLATION-1Y"),
    ],
)
def test_years_after_closing(classification: str, years: int, rule: str) -> None:
    d = disposition(case(classification), POL)
    assert d.rule_id == rule and d.action == "dispose"
    assert d.due == CLOSED.replace(year=CLOSED.year + years)


@pytest.mark.parametrize(
    "classification",
    [
        "homicide",
        "suicide",
        "arson_1",
        "arson_3",
        "missing_person",
        "aggravated_sexual_assault_1",
        "active_warrant",
        "stolen_or_missing_firearm",
    ],
)
def test_permanent(classification: str) -> None:
    d = disposition(case(classification), POL)
    assert d.rule_id == "NYS-PERMANENT" and d.due is None and d.action == "keep"


def test_clock_starts_only_at_closure_as_defined() -> None:
    assert disposition(case("misdemeanor", closed_at=None), POL).due is None
    d = disposition(case("misdemeanor", closure_reason="detective_gave_up"), POL)
    assert d.due is None and "not a closure" in d.reason
    for reason in ("settlement", "no_arrest", "restitution_no_longer_sought"):
        assert disposition(case("misdemeanor", closure_reason=reason), POL).due is not None


def test_child_victims_and_juveniles() -> None:
    d = disposition(case("child_victims_act", subject_birth=date(2010, 2, 28)), POL)
    assert d.rule_id == "NYS-CHILD-VICTIMS-55" and d.due == datetime(2065, 2, 28, tzinfo=UTC)
    d = disposition(case("juvenile_no_arrest", subject_birth=date(2008, 2, 29)), POL)
    assert d.due == datetime(2027, 2, 28, tzinfo=UTC)  # one year after 18; no 29 Feb in 2027
    with pytest.raises(InputError, match="subject_birth"):
        disposition(case("child_victims_act"), POL)


def test_personal_data_file_whichever_is_shorter() -> None:
    f = RecordFacts(
        "p1",
        ERMS,
        "personal_data_file",
        T0,
        subject_birth=date(1940, 5, 1),
        subject_death=date(2025, 1, 1),
    )
    assert disposition(f, POL).due == datetime(2030, 1, 1, tzinfo=UTC)  # death + 5 < birth + 90
    f = RecordFacts(
        "p2",
        ERMS,
        "personal_data_file",
        T0,
        subject_birth=date(1930, 5, 1),
        subject_death=date(2025, 1, 1),
    )
    assert disposition(f, POL).due == datetime(2020, 5, 1, tzinfo=UTC)  # 90 years came first
    f = RecordFacts(
        "p3",
        ERMS,
        "personal_data_file",
        T0,
        subject_birth=date(1930, 5, 1),
        last_arrest=date(2019, 7, 1),
    )
    assert disposition(f, POL).due == datetime(2024, 7, 1, tzinfo=UTC)  # 5 arrest-free years


def test_sensor_audio_30h_evidence_and_sf_window() -> None:
    audio = RecordFacts("a1", SS, "sensor_audio", T0)
    assert disposition(audio, POL).due == T0 + timedelta(hours=30)
    clip = RecordFacts("a2", SS, "incident_audio", T0)
    assert disposition(clip, POL).action == "keep"
    view = RecordFacts("v1", "sf-dem-gunshot-detection", "dem_incident_view", T0)
    d = disposition(view, POL)
    assert d.action == "hide" and d.due == T0 + timedelta(days=7)


def test_plan_lists_due_held_and_errors_without_dropping() -> None:
    recs = [
        RecordFacts("a1", SS, "sensor_audio", T0),
        RecordFacts("a2", SS, "sensor_audio", T0, on_hold=True),
        RecordFacts("a3", SS, "sensor_audio", T0 + timedelta(days=10)),
        case("grand_theft_auto_9"),
    ]
    p = plan(recs, POL, T0 + timedelta(days=2))
    assert [d.record_id for d in p.due] == ["a1"]
    assert [d.record_id for d in p.held] == ["a2"]
    assert len(p.errors) == 1 and "grand_theft_auto_9" in str(p.errors[0])
