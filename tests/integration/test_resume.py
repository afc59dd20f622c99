"""After a crash the server's pipeline picks up where it left off (pulses kept in the store)."""

from __future__ import annotations

from pathlib import Path

from shotwatch.api.live import PipelineConsumer, resume
from shotwatch.core.clock import ReplayClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Incident
from shotwatch.core.settings import Settings
from shotwatch.pipeline import Pipeline, StoreSink, incident_close_delay_s
from shotwatch.sim import example_scenarios, load_scenario, simulate_pulses
from shotwatch.storage.db import make_engine, migrate, session_factory
from shotwatch.storage.service import load_pulses

FRAME = LocalFrame(41.8781, -87.6298)


def _drain(cons: PipelineConsumer, clock: ReplayClock, until_s: float) -> list[Incident]:
    out: list[Incident] = []
    while clock.now() < until_s:
        clock.advance_by(1.0)
        out += cons.tick()[1]
    return out


def test_restart_mid_incident_gives_the_same_incident(tmp_path: Path) -> None:
    sc = load_scenario(example_scenarios()["city_single_shooter"])
    pulses = sorted(simulate_pulses(sc, 1).pulses, key=lambda p: p.t_s)
    st = Settings()
    end = pulses[-1].t_s + incident_close_delay_s(st) + 5

    # uninterrupted reference
    clock = ReplayClock(0.0)
    ref = PipelineConsumer(lambda sink: Pipeline(st, clock, sink, frame=FRAME))
    want: list[Incident] = []
    for p in pulses:
        clock.advance_to(p.t_s)
        want += ref.feed(p)[1]
    want += _drain(ref, clock, end)
    assert len(want) == 1

    # the server stores pulses as they come, then dies half-way through the shooting
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    clock = ReplayClock(0.0)
    first = PipelineConsumer(
        lambda sink: Pipeline(st, clock, sink, frame=FRAME), StoreSink(sessions)
    )
    half = len(pulses) // 2
    for p in pulses[:half]:
        clock.advance_to(p.t_s)
        first.feed(p)
    first.tap.close()  # flush buffered pulses to the store, as a clean stop of the sink would
    # a new process: fresh pipeline, resumed from the stored recent pulses
    clock.advance_to(pulses[half].t_s)
    lookback = incident_close_delay_s(st) + 5
    with sessions() as s:
        recent = load_pulses(session=s, start_s=clock.now() - lookback)
    got: list[Incident] = []
    second = PipelineConsumer(lambda sink: Pipeline(st, clock, sink, frame=FRAME))
    n = resume(second, recent, lambda iid: False, lambda sh, inc: got.extend(inc))
    assert n == half
    for p in pulses[half:]:
        clock.advance_to(p.t_s)
        got += second.feed(p)[1]
    got += _drain(second, clock, end)
    assert [i.incident_id for i in got] == [i.incident_id for i in want]
    assert got[0].rounds == want[0].rounds and got[0].shot_ids == want[0].shot_ids
