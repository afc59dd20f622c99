"""Storage of the pipeline's objects, on SQLite and PostgreSQL (the ``db_url`` fixture)."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterator
from dataclasses import replace

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session
from tests.dbschema import isolated_url

from shotwatch.core.errors import InputError
from shotwatch.core.model import (
    Ellipse,
    EvaluationStatus,
    Incident,
    Movement,
    Provenance,
    Pulse,
    Sensor,
    ShotLocation,
)
from shotwatch.storage import service as svc
from shotwatch.storage.db import Base, make_engine, migrate, session_factory
from shotwatch.storage.tables import PIPELINE_TABLES

T0 = 1_545_180_567.467  # 2018-12-19T00:49:27.467Z: float64 keeps ~0.2 us here
AUTO = Provenance.automatic("test-locator", "1.2.3", T0 + 5.0)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    with isolated_url(db_url) as url:
        migrate(url)
        eng = make_engine(url)
        yield eng
        eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as s:
        yield s


def _pulses(n: int = 4) -> list[Pulse]:
    return [
        Pulse(
            pulse_id=f"p{i}",
            sensor=f"S{i}",
            t_s=T0 + 0.123456 * i,
            x_m=-11784.3014226056 + 10 * i,
            y_m=3135.63579979911 - i,
            z_m=-102.0375003662,
            snr_db=13.4592 + i,
            level_db_spl=79.8193,
            clock_error_s=0.0318640 / (i + 1),
            score=0.25 * i,
            provenance=Provenance.automatic("vendor-picker", "ss-2018", T0 + 1.0),
        )
        for i in range(n)
    ]


def _shot(pulses: list[Pulse], shot_id: str = "shot-a", **kw: object) -> ShotLocation:
    base = ShotLocation(
        shot_id=shot_id,
        t0_s=T0 - 0.4,
        x_m=-11450.2046110589,
        y_m=3653.51602554694,
        z_m=-92.858,
        pulse_ids=tuple(p.pulse_id for p in pulses[:3]),
        sensors=tuple(p.sensor for p in pulses[:3]),
        residuals_s={"p0": 0.0011, "p1": -0.0004, "p2": 1e-9, "p3": 0.2},
        residual_rms_s=0.00071,
        uncertainty_m=3.7,
        ellipse=Ellipse(4.1, 2.2, 37.5, 0.9),
        covariance=((4.0, 0.3, 0.0), (0.3, 2.5, 0.0), (0.0, 0.0, 1e-12)),
        dims=2,
        quality=0.87,
        outliers=("p3",),
        ambiguous=True,
        alternative_xy_m=(-11600.5, 3500.25),
        speed_of_sound_mps=331.3,
        lat_deg=40.4406,
        lon_deg=-79.9959,
        status=EvaluationStatus.PRELIMINARY,
        provenance=AUTO,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _incident(shot_ids: tuple[str, ...], incident_id: str = "inc-1", **kw: object) -> Incident:
    base = Incident(
        incident_id=incident_id,
        shot_ids=shot_ids,
        start_s=T0 - 0.4,
        end_s=T0 + 2.6,
        x_m=-11450.0,
        y_m=3653.5,
        rounds=len(shot_ids),
        shooters=2,
        shooter_positions=((-11450.0, 3653.5), (-11400.25, 3600.0)),
        automatic=False,
        cadence_rps=1.5,
        movement=Movement(speed_mps=1.2, heading_deg=271.0, distance_m=3.6),
        lat_deg=40.44,
        lon_deg=-79.99,
        gunfire_probability=0.93,
        label="gunfire",
        status=EvaluationStatus.PRELIMINARY,
        provenance=Provenance.automatic("incident-builder", "0.1", T0 + 40.0),
        extra={"zone": "FP1", "notes": ["a", "b"], "n": 3},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_migration_matches_the_table_definitions(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert {t.name for t in PIPELINE_TABLES} <= names
    with engine.connect() as conn, warnings.catch_warnings():
        # SQLite cannot reflect the audit log's expression index; that table is not ours here.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = {t.name for t in PIPELINE_TABLES}
    mine = [d for d in diff if any(t in repr(d) for t in ours)]
    assert mine == [], f"migration and tables.py differ: {mine}"


def test_objects_round_trip_exactly(session: Session) -> None:
    sensors = [Sensor("S0", 1.5, -2.25, 3.0, 40.1, -79.9, 250.5), Sensor("S1", 10.0, 20.0)]
    pulses = _pulses()
    shot = _shot(pulses)
    incident = _incident((shot.shot_id,))
    svc.save_sensors(sensors, session=session, provenance=AUTO)
    svc.save_pulses(pulses, session=session)
    svc.save_shots([shot], session=session)
    svc.save_incidents([incident], session=session)
    session.commit()
    session.expunge_all()

    assert svc.load_sensors(session=session) == sensors
    assert svc.load_pulses(session=session) == pulses
    assert svc.load_shot("shot-a", session=session) == shot
    assert svc.load_incident("inc-1", session=session) == incident
    # the time survives to the microsecond
    assert svc.load_pulses(session=session)[1].t_s == T0 + 0.123456


def test_unknowns_and_optionals_round_trip(session: Session) -> None:
    p = Pulse("px", "S9", T0, 0.0, 0.0, 0.0, provenance=AUTO)  # snr/level/score unknown (NaN)
    svc.save_pulses([p], session=session)
    shot = _shot(
        [p, p, p],
        shot_id="shot-min",
        pulse_ids=("px",),
        sensors=("S9",),
        residuals_s={"px": math.nan},
        outliers=(),
        ellipse=None,
        covariance=((math.inf, 0.0), (0.0, 1.0)),
        alternative_xy_m=None,
        ambiguous=False,
        lat_deg=None,
        lon_deg=None,
        quality=math.nan,
    )
    svc.save_shots([shot], session=session)
    inc = _incident(
        ("shot-min",),
        incident_id="inc-min",
        movement=None,
        cadence_rps=None,
        lat_deg=None,
        lon_deg=None,
        gunfire_probability=None,
        label=None,
        extra={},
        shooter_positions=(),
    )
    svc.save_incidents([inc], session=session)
    session.commit()
    session.expunge_all()
    (back,) = svc.load_pulses(session=session)
    assert math.isnan(back.snr_db) and math.isnan(back.level_db_spl) and math.isnan(back.score)
    loaded = svc.load_shot("shot-min", session=session)
    assert loaded is not None
    assert math.isnan(loaded.residuals_s["px"]) and math.isnan(loaded.quality)
    assert loaded.covariance == ((math.inf, 0.0), (0.0, 1.0))
    assert replace(loaded, residuals_s={}, quality=0.0) == replace(
        shot, residuals_s={}, quality=0.0
    )
    assert svc.load_incident("inc-min", session=session) == inc


def test_pulse_ingest_is_idempotent(session: Session) -> None:
    pulses = _pulses(5)
    first = svc.save_pulses(pulses, session=session)
    session.commit()
    assert first.stored == [p.pulse_id for p in pulses] and not first.duplicates

    again = svc.save_pulses([*pulses[3:], pulses[0], pulses[0]], session=session)
    session.commit()
    assert again.stored == []
    assert sorted(again.duplicates) == ["p0", "p0", "p3", "p4"]
    assert svc.count_pulses(session=session) == 5

    # same id, different content: reported as a conflict, the stored pulse is kept
    changed = replace(pulses[2], t_s=pulses[2].t_s + 0.5)
    new = replace(pulses[0], pulse_id="p-new")
    mixed = svc.save_pulses([changed, new], session=session)
    session.commit()
    assert mixed.conflicts == ["p2"] and mixed.stored == ["p-new"]
    assert svc.load_pulses_by_id(["p2"], session=session) == [pulses[2]]
    assert svc.count_pulses(session=session) == 6


def test_versions_are_added_never_overwritten(session: Session) -> None:
    pulses = _pulses()
    svc.save_pulses(pulses, session=session)
    machine = _shot(pulses)
    svc.save_shots([machine], session=session)
    session.commit()

    # an identical re-save is a no-op; a changed shot under the same id is refused
    assert svc.save_shots([machine], session=session).duplicates == ["shot-a"]
    moved = replace(machine, x_m=machine.x_m + 20.0)
    assert svc.save_shots([moved], session=session).conflicts == ["shot-a"]
    session.commit()
    assert svc.load_shot("shot-a", session=session) == machine

    # a reviewer's relocation is a new, attributed version
    reviewed = replace(
        moved,
        shot_id="shot-a-r1",
        status=EvaluationStatus.REVIEWED,
        provenance=Provenance.manual("analyst7", T0 + 300.0, supersedes="shot-a"),
    )
    svc.save_shots([reviewed], session=session)
    inc = _incident(("shot-a",))
    svc.save_incidents([inc], session=session)
    inc_r = replace(
        inc,
        incident_id="inc-1-r1",
        shot_ids=("shot-a-r1",),
        rounds=1,
        status=EvaluationStatus.CONFIRMED,
        provenance=Provenance.manual("analyst7", T0 + 310.0, supersedes="inc-1"),
    )
    svc.save_incidents([inc_r], session=session)
    session.commit()
    session.expunge_all()

    assert svc.load_shot("shot-a", session=session) == machine
    assert [s.shot_id for s in svc.load_shots(session=session)] == ["shot-a-r1"]
    assert {s.shot_id for s in svc.load_shots(session=session, latest_only=False)} == {
        "shot-a",
        "shot-a-r1",
    }
    assert svc.incident_history("inc-1-r1", session=session) == [inc, inc_r]
    assert svc.query_incidents(session=session) == [inc_r]


def test_supersedes_must_name_a_stored_object(session: Session) -> None:
    pulses = _pulses()
    svc.save_pulses(pulses, session=session)
    orphan = _shot(pulses, provenance=Provenance.manual("a", T0, supersedes="nope"))
    with pytest.raises(InputError, match=r"shot shot-a: provenance.supersedes"):
        svc.save_shots([orphan], session=session)


def test_sensor_resurvey_adds_a_version(session: Session) -> None:
    svc.save_sensors([Sensor("S1", 0.0, 0.0)], session=session, provenance=AUTO)
    again = svc.save_sensors([Sensor("S1", 0.0, 0.0)], session=session, provenance=AUTO)
    assert again.duplicates == ["S1"]
    later = Provenance.manual("surveyor", T0 + 86400.0)
    svc.save_sensors([Sensor("S1", 1.5, 0.0)], session=session, provenance=later)
    session.commit()
    assert svc.load_sensors(session=session) == [Sensor("S1", 1.5, 0.0)]
    hist = svc.sensor_history("S1", session=session)
    assert [s.x_m for s, _ in hist] == [0.0, 1.5]
    assert hist[1][1].author == "surveyor"


def test_incident_time_window_query(session: Session) -> None:
    pulses = _pulses()
    svc.save_pulses(pulses, session=session)
    svc.save_shots([_shot(pulses)], session=session)
    for k, start in enumerate([100.0, 200.0, 300.0]):
        svc.save_incidents(
            [_incident(("shot-a",), incident_id=f"w{k}", start_s=start, end_s=start + 10.0)],
            session=session,
        )
    session.commit()

    def ids(a: float | None, b: float | None) -> list[str]:
        return [i.incident_id for i in svc.query_incidents(session=session, start_s=a, end_s=b)]

    assert ids(None, None) == ["w0", "w1", "w2"]
    assert ids(205.0, 206.0) == ["w1"]  # inside an incident
    assert ids(110.0, 200.0) == ["w0"]  # touches w0's end; w1 starts at the window's end
    assert ids(111.0, 199.0) == []
    assert ids(150.0, None) == ["w1", "w2"]


def test_missing_provenance_or_pulses_are_named(session: Session) -> None:
    bare = Pulse("pz", "S1", T0, 0.0, 0.0, 0.0)
    with pytest.raises(InputError, match=r"pulse pz: provenance"):
        svc.save_pulses([bare], session=session)
    with pytest.raises(InputError, match=r"shot shot-a: pulse_ids: pulses not stored"):
        svc.save_shots([_shot(_pulses())], session=session)


def test_db_upgrade_command(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from shotwatch.cli.main import main

    with isolated_url(db_url) as url:
        assert main(["db", "current", "--db", url]) == 0
        assert "no migrations applied" in capsys.readouterr().out
        assert main(["db", "upgrade", "--db", url]) == 0
        assert "upgraded" in capsys.readouterr().out
        assert main(["db", "current", "--db", url]) == 0
        assert "pipeline_0002" in capsys.readouterr().out
        eng = make_engine(url)
        assert {t.name for t in PIPELINE_TABLES} <= set(inspect(eng).get_table_names())
        eng.dispose()


EXTREMES = [0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1e300, 0.1]


def test_extreme_and_random_floats_round_trip_bit_for_bit(session: Session) -> None:
    rng = random.Random(20261123)
    pulses = []
    for i in range(200):
        xyz = [
            rng.choice(EXTREMES) if rng.random() < 0.3 else rng.uniform(-1e7, 1e7) for _ in range(3)
        ]
        t_s = rng.choice([0.0, 4.1e9, T0]) if i < 3 else rng.uniform(0.0, 4.1e9)
        snr = math.nan if rng.random() < 0.2 else rng.uniform(-50.0, 150.0)
        ce = rng.choice([0.0, 0.999999, rng.random() * 0.5])
        serial = "".join(rng.choice("AZaz09-_:/é ") for _ in range(rng.randint(1, 40)))
        pulses.append(
            Pulse(f"r-{i}", serial, t_s, *xyz, snr_db=snr, clock_error_s=ce, provenance=AUTO)
        )
    assert len(svc.save_pulses(pulses, session=session).stored) == len(pulses)
    session.commit()
    session.expunge_all()
    back = {p.pulse_id: p for p in svc.load_pulses(session=session)}
    for p in pulses:
        q = back[p.pulse_id]
        assert svc._same(q, p), (p, q)
        # the same bits (SQLite keeps -0.0 as 0.0, which compares equal: the one exception)
        for a, b in ((q.t_s, p.t_s), (q.x_m, p.x_m), (q.y_m, p.y_m), (q.z_m, p.z_m)):
            assert a == b and (b == 0.0 or a.hex() == b.hex())
