"""The pipeline flow with the real associator, locator and incident builder."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from tests.dbschema import isolated_url

from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.clock import ReplayClock
from shotwatch.core.model import Incident, Provenance
from shotwatch.core.settings import Settings
from shotwatch.pipeline import ListSink, Pipeline, StoreSink, replay
from shotwatch.sim import SimResult, example_scenarios, load_scenario, simulate_pulses
from shotwatch.storage import service as svc
from shotwatch.storage.db import make_engine, migrate, session_factory


@pytest.fixture(scope="module")
def city() -> SimResult:
    return simulate_pulses(load_scenario(example_scenarios()["city_single_shooter"]), 7)


@pytest.fixture(scope="module")
def expected(city: SimResult) -> ListSink:
    """The replay result every other way of running the same input must reproduce."""
    return _run(city)


def _pipeline(sim: SimResult, sink: ListSink | StoreSink) -> tuple[Pipeline, ReplayClock]:
    clock = ReplayClock(sim.pulses[0].t_s)
    c = speed_of_sound_mps(sim.scenario.environment.temperature_c)
    return Pipeline(Settings(), clock, sink, c_mps=c, frame=sim.scene.frame), clock


def _run(sim: SimResult) -> ListSink:
    sink = ListSink()
    pipe, clock = _pipeline(sim, sink)
    replay(pipe, sim.pulses, clock)
    return sink


def test_replay_finds_the_shooter(city: SimResult, expected: ListSink) -> None:
    sink = expected
    (inc,) = sink.incident_list
    (src,) = [s for s in city.truth.sources if s.kind == "gunfire"]
    assert inc.rounds == src.rounds
    assert math.hypot(inc.x_m - src.x_m, inc.y_m - src.y_m) < 15.0
    # geo-referenced through the scenario's frame
    assert inc.lat_deg is not None and abs(inc.lat_deg - 41.88) < 0.02
    assert all(s.lat_deg is not None for s in sink.shot_list)
    assert all(i.provenance is not None for i in sink.incident_list)
    # every pulse went to the sink, every shot's pulses came before it
    assert len(sink.pulse_list) == len(city.pulses)


def test_replay_is_deterministic(city: SimResult, expected: ListSink) -> None:
    a, b = expected, _run(city)
    assert a.incident_list == b.incident_list  # ids, provenance times and all
    assert a.shot_list == b.shot_list


def test_live_ticks_give_the_replay_result(city: SimResult, expected: ListSink) -> None:
    """A live driver (clock moving in 50 ms ticks, pulses arriving when heard) and the replay
    driver run one code path and must agree."""
    sink = ListSink()
    pipe, clock = _pipeline(city, sink)
    pending = sorted(city.pulses, key=lambda p: p.t_s)
    t = pending[0].t_s
    i = 0
    while i < len(pending):
        t += 0.05
        clock.advance_to(t)
        while i < len(pending) and pending[i].t_s <= t:
            pipe.feed(pending[i])
            i += 1
        pipe.tick()
    pipe.finish()
    assert sink.incident_list == expected.incident_list


def test_live_ticks_close_an_idle_incident_without_a_later_shot(
    city: SimResult, expected: ListSink
) -> None:
    """Live, the last incident must not wait for the next gunfire (or a shutdown): once no shot
    can still join it, a tick closes it, and it equals the replay's incident."""
    sink = ListSink()
    pipe, clock = _pipeline(city, sink)
    for pulse in sorted(city.pulses, key=lambda p: p.t_s):
        clock.advance_to(pulse.t_s)
        pipe.feed(pulse)
        pipe.tick()
    assert sink.incident_list == []  # just heard: still open
    st = pipe.settings
    last_t0 = max(s.t0_s for s in sink.shot_list)
    quiet_s = (
        st.incidents.max_gap_s
        + st.association.window_s
        + st.association.max_station_distance_m / 290.0
        + 1.0
    )
    clock.advance_to(last_t0 + quiet_s)
    closed = pipe.tick()
    # the same incident; only its creation time says when it was closed
    assert [replace(i, provenance=None) for i in closed] == [
        replace(i, provenance=None) for i in expected.incident_list
    ]
    assert all(i.provenance and i.provenance.created_s >= last_t0 for i in closed)
    assert sink.incident_list == closed
    assert pipe.finish() == []  # nothing left open


def test_duplicate_pulses_are_reported_not_counted(city: SimResult, expected: ListSink) -> None:
    doubled = []
    for k, p in enumerate(city.pulses):
        doubled.append(p)
        if k % 3 == 0:
            doubled.append(p)  # a retried report
    changed = replace(city.pulses[5], snr_db=city.pulses[5].snr_db + 1.0)
    doubled.append(changed)  # same id, different content
    sink = ListSink()
    pipe, clock = _pipeline(city, sink)
    incidents: list[Incident] = []
    for p in doubled:
        clock.advance_to(p.t_s)
        incidents += pipe.feed(p)
    incidents += pipe.finish()
    assert incidents == expected.incident_list
    assert len(pipe.stats.duplicates) == len(range(0, len(city.pulses), 3))
    assert pipe.stats.conflicts == [city.pulses[5].pulse_id]
    assert any("pulse_id" in str(e) and city.pulses[5].pulse_id in str(e) for e in pipe.errors)


@pytest.fixture
def store_url(db_url: str) -> Iterator[str]:
    with isolated_url(db_url) as url:
        migrate(url)
        yield url


def test_replay_into_the_store_and_again(
    city: SimResult, expected: ListSink, store_url: str
) -> None:
    engine = make_engine(store_url)
    factory = session_factory(engine)
    for attempt in range(2):
        store = StoreSink(factory)
        pipe, clock = _pipeline(city, store)
        replay(pipe, city.pulses, clock)
        if attempt == 0:
            assert len(store.pulse_report.stored) == len(city.pulses)
            assert store.incident_report.stored == [i.incident_id for i in expected.incident_list]
        else:  # the same recording again adds nothing
            assert store.pulse_report.stored == [] and store.shot_report.stored == []
            assert len(store.pulse_report.duplicates) == len(city.pulses)
            assert not store.shot_report.conflicts and not store.incident_report.conflicts
    with factory() as session:
        assert svc.query_incidents(session=session) == expected.incident_list
        assert svc.load_shots(session=session) == sorted(
            expected.shot_list, key=lambda s: (s.t0_s, s.shot_id)
        )
        assert svc.count_pulses(session=session) == len(city.pulses)
    engine.dispose()


def test_background_store_commits_the_same_without_making_the_caller_wait(
    city: SimResult, expected: ListSink, store_url: str
) -> None:
    """The server's writer thread (ADR 0108): while the database is held, feeding goes on;
    afterwards everything is stored as the foreground sink stores it, pulses included."""
    engine = make_engine(store_url)
    factory = session_factory(engine)
    gate = threading.Event()

    class Held:  # a session factory that makes the writer wait until the gate opens
        def begin(self) -> object:
            assert gate.wait(30)
            return factory.begin()

    store = StoreSink(Held(), background=True)  # type: ignore[arg-type]
    pipe, clock = _pipeline(city, store)
    for p in sorted(city.pulses, key=lambda p: (p.t_s, p.sensor, p.pulse_id)):
        clock.advance_to(p.t_s)
        pipe.feed(p)  # returns although nothing can be committed yet
    assert store.commits == 0 and not store.flush(timeout_s=0.05)
    gate.set()
    assert store.flush(timeout_s=30)
    pipe.finish()  # the last incidents, then close: the writer commits them and stops
    assert not store.errors
    assert len(store.pulse_report.stored) + len(store.pulse_report.duplicates) == len(city.pulses)
    with factory() as session:
        assert svc.query_incidents(session=session) == expected.incident_list
        assert svc.count_pulses(session=session) == len(city.pulses)
    engine.dispose()


def test_background_store_keeps_the_rest_when_one_object_fails(store_url: str) -> None:
    """A batch that cannot commit is written call by call: the bad call is named in
    ``errors``; the good ones are stored."""
    engine = make_engine(store_url)
    factory = session_factory(engine)
    sim = simulate_pulses(load_scenario(example_scenarios()["city_single_shooter"]), 11)
    good = sim.pulses[:5]
    prov = Provenance.automatic("test", "1", 0.0)
    bad = replace(  # names a pulse it replaces that does not exist: a foreign-key violation
        sim.pulses[5], pulse_id="bad-pulse", provenance=replace(prov, supersedes="no-such")
    )
    gate = threading.Event()

    class Held:
        def begin(self) -> object:
            assert gate.wait(30)
            return factory.begin()

    store = StoreSink(Held(), background=True, retries=1)  # type: ignore[arg-type]
    store.pulses(good[:2])
    store.pulses([bad])
    store.pulses(good[2:])
    gate.set()
    store.close()
    assert len(store.errors) == 1 and "bad-pulse" in store.errors[0]
    assert sorted(store.pulse_report.stored) == sorted(p.pulse_id for p in good)
    engine.dispose()
