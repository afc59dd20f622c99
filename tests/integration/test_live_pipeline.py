"""The server's live pipeline adapter: pulses in real time, incidents out by ticking alone."""

from __future__ import annotations

from shotwatch.api.live import PipelineConsumer
from shotwatch.core.clock import ReplayClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.settings import Settings
from shotwatch.pipeline import Pipeline, incident_close_delay_s
from shotwatch.sim import example_scenarios, load_scenario, simulate_pulses


def test_ticks_alone_complete_the_incident() -> None:
    sc = load_scenario(example_scenarios()["city_single_shooter"])
    res = simulate_pulses(sc, 1)
    clock = ReplayClock(0.0)
    frame = LocalFrame(41.8781, -87.6298)
    cons = PipelineConsumer(lambda sink: Pipeline(Settings(), clock, sink, frame=frame))
    shots, incidents = [], []
    for p in sorted(res.pulses, key=lambda p: p.t_s):
        clock.advance_to(p.t_s)
        s, i = cons.feed(p)
        shots += s
        incidents += i
    assert incidents == []  # nothing closes while the shooting may go on
    last = max(p.t_s for p in res.pulses)

    while clock.now() < last + incident_close_delay_s(Settings()) + 5:
        clock.advance_by(1.0)
        s, i = cons.tick()
        shots += s
        incidents += i
    truth = [e for e in res.truth.events if e.is_gunshot]
    assert len(incidents) == 1 and incidents[0].rounds == len(truth)
    assert len(shots) == len(truth) and all(s.lat_deg is not None for s in shots)
    assert incidents[0].lat_deg is not None
