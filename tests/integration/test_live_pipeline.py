"""The server's live pipeline adapter: pulses in real time, incidents out by ticking alone."""

from __future__ import annotations

from shotwatch.api.live import PipelineConsumer
from shotwatch.core.clock import ReplayClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.settings import Settings
from shotwatch.pipeline import LIVE_TICK_EVERY_S, Pipeline, incident_close_delay_s
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


def test_preliminary_versions_reach_the_queue_long_before_the_close() -> None:
    """With ``preliminary`` on, the open incident comes out as soon as its first shot is
    located (within the shot horizon, not the 30-s close), under the id the closed incident
    keeps; the closed incident is exactly what the consumer without preliminaries makes."""
    from shotwatch.pipeline import shot_horizon_s

    sc = load_scenario(example_scenarios()["city_single_shooter"])
    res = simulate_pulses(sc, 1)
    st = Settings()
    clock = ReplayClock(0.0)
    frame = LocalFrame(41.8781, -87.6298)
    early = PipelineConsumer(lambda s: Pipeline(st, clock, s, frame=frame), preliminary=True)
    plain = PipelineConsumer(lambda s: Pipeline(st, clock, s, frame=frame))
    seen: list[tuple[float, object]] = []
    finals_early: list[object] = []
    finals_plain: list[object] = []

    def take(out: tuple[object, object], into: list[object]) -> None:
        for inc in out[1]:  # type: ignore[attr-defined]
            if inc.extra.get("open"):
                seen.append((clock.now(), inc))
            else:
                into.append(inc)

    pulses = sorted(res.pulses, key=lambda p: p.t_s)
    for p in pulses:
        clock.advance_to(p.t_s)
        take(early.feed(p), finals_early)
        take(plain.feed(p), finals_plain)
    last = pulses[-1].t_s
    while clock.now() < last + incident_close_delay_s(st) + 5:
        clock.advance_by(0.25)
        take(early.tick(), finals_early)
        take(plain.tick(), finals_plain)
    assert len(finals_early) == 1 and finals_early == finals_plain
    final = finals_early[0]
    assert seen, "no preliminary version came out"
    first_t, first = seen[0]
    assert first.incident_id == final.incident_id  # type: ignore[attr-defined]
    assert first.lat_deg is not None  # type: ignore[attr-defined]
    shot_t0 = min(p.t_s for p in pulses) - 2.0  # sound needs < 2 s to the first sensor here
    assert first_t <= shot_t0 + shot_horizon_s(st) + 2.5
    assert first_t < final.end_s + incident_close_delay_s(st) - 20  # well before the close
    # every later shot updates it: the last preliminary version has all the rounds
    assert seen[-1][1].rounds == final.rounds  # type: ignore[attr-defined]


def test_a_forming_incident_reaches_the_queue_within_a_second_of_its_pulses() -> None:
    """The associator's plausible provisional shots (ADR 0015) build a preview of the
    incident while its sound still travels: the first version comes out, marked tentative,
    about a second after the first pulse (not after the 7-s shot horizon), under the id
    the final incident keeps; once every shot is final no version rests on provisional
    shots any more."""
    sc = load_scenario(example_scenarios()["city_single_shooter"])
    res = simulate_pulses(sc, 1)
    st = Settings()
    clock = ReplayClock(0.0)
    cons = PipelineConsumer(lambda s: Pipeline(st, clock, s), preliminary=True)
    versions: list[tuple[float, object]] = []
    finals: list[object] = []
    pulses = sorted(res.pulses, key=lambda p: p.t_s)
    for p in pulses:
        clock.advance_to(p.t_s)
        for inc in cons.feed(p)[1]:
            (versions.append((clock.now(), inc)) if inc.extra.get("open") else finals.append(inc))
    while clock.now() < pulses[-1].t_s + incident_close_delay_s(st) + 5:
        clock.advance_by(0.25)
        for inc in cons.tick()[1]:
            (versions.append((clock.now(), inc)) if inc.extra.get("open") else finals.append(inc))
    (final,) = finals
    first_t, first = versions[0]
    # (test-side truth: when the first round's sound reached the first sensor)
    heard = min(p.t_s for p in pulses if res.truth.pulses[p.pulse_id].event_id is not None)
    assert first.extra.get("tentative") is True  # type: ignore[attr-defined]
    assert first_t - heard <= 1.0
    assert first.incident_id == final.incident_id  # type: ignore[attr-defined]
    assert not versions[-1][1].extra.get("tentative")  # type: ignore[attr-defined]
    assert not any(v.extra.get("withdrawn") for _, v in versions)  # type: ignore[attr-defined]


def test_a_shot_final_before_it_was_ever_shown_still_opens_its_incident() -> None:
    """A shot can become final without having been shown as provisional (its pulses came in
    a bunch after a server backlog). Its incident must come out as an open version then,
    even while provisional shots elsewhere in the city are forming, not only at the close
    30 s later (NYE replay: ~0.5 % of shots reached the consoles 3.5 s late this way)."""
    from dataclasses import replace

    sc = load_scenario(example_scenarios()["city_single_shooter"])
    res = simulate_pulses(sc, 1)
    st = Settings()
    clock = ReplayClock(0.0)
    cons = PipelineConsumer(lambda s: Pipeline(st, clock, s), preliminary=True)
    assoc = cons.pipeline.associator
    real_drain = assoc.drain_provisional  # type: ignore[attr-defined]
    elsewhere: list[object] = []

    def drain() -> list[object]:
        # this shooter's shots are never shown as provisional; one forming shot 5 km away
        # stays on the consoles the whole time
        for u in real_drain():
            if not elsewhere and u.plausible and not u.final and not u.retracted:
                far = replace(u.shot, shot_id="far-away", x_m=u.shot.x_m + 5000.0)
                elsewhere.append(replace(u, key="far-away", shot=far))
                return list(elsewhere)
        return []

    assoc.drain_provisional = drain  # type: ignore[attr-defined]
    versions: list[tuple[float, object]] = []
    finals: list[object] = []

    def take(out: tuple[object, object]) -> None:
        for inc in out[1]:  # type: ignore[attr-defined]
            (versions.append((clock.now(), inc)) if inc.extra.get("open") else finals.append(inc))

    pulses = sorted(res.pulses, key=lambda p: p.t_s)
    for p in pulses:
        clock.advance_to(p.t_s)
        take(cons.feed(p))
    while clock.now() < pulses[-1].t_s + incident_close_delay_s(st) + 5:
        clock.advance_by(0.25)
        take(cons.tick())
    assert elsewhere, "no provisional shot to keep elsewhere"
    (final,) = [f for f in finals if "far-away" not in f.shot_ids]  # type: ignore[attr-defined]
    mine = [(t, v) for t, v in versions if v.incident_id == final.incident_id]  # type: ignore[attr-defined]
    assert mine, "the incident came out only when it closed"
    assert mine[0][0] < final.end_s + incident_close_delay_s(st) - 20  # type: ignore[attr-defined]
    assert mine[-1][1].rounds == final.rounds  # type: ignore[attr-defined]


def test_a_backlog_does_not_close_shots_before_their_pulses_are_in() -> None:
    """Pulses handed over 9 s after their arrival time (a server backlog: in the NYE replay
    at 10x, 0.9 s of wall) while the clock ticks on: the shots come out as in a replay at
    the arrival times, not cut short because the clock passed their wait (ADR 0109)."""
    sc = load_scenario(example_scenarios()["city_single_shooter"])
    res = simulate_pulses(sc, 1)
    st = Settings()
    pulses = sorted(res.pulses, key=lambda p: p.t_s)

    def run(lag_s: float) -> list[object]:
        clock = ReplayClock(0.0)
        cons = PipelineConsumer(lambda s: Pipeline(st, clock, s))
        shots: list[object] = []
        t = pulses[0].t_s
        for p in pulses:
            while t + 0.25 < p.t_s + lag_s:  # the server's ticker keeps running meanwhile
                t += 0.25
                clock.advance_to(t)
                shots += cons.tick()[0]
            clock.advance_to(p.t_s + lag_s)
            shots += cons.feed(p)[0]
        for _ in range(400):
            clock.advance_by(0.25)
            shots += cons.tick()[0]
        return sorted((s.shot_id, tuple(sorted(s.pulse_ids))) for s in shots)  # type: ignore[attr-defined]

    replayed = run(0.0)
    rounds = sum(1 for e in res.truth.events if e.is_gunshot)
    assert len(replayed) == rounds  # every round found when fed on time
    assert run(9.0) == replayed


def test_a_live_pipeline_ticks_at_most_every_tick_interval_and_finds_the_same_shots() -> None:
    """A live server lets a pulse tick only when the last tick is LIVE_TICK_EVERY_S old
    (the ticker lets time pass in between): the same shots as ticking after every pulse,
    with a fraction of the pulses' flushes when they come fast."""
    sc = load_scenario(example_scenarios()["city_single_shooter"])
    res = simulate_pulses(sc, 1)
    st = Settings()
    pulses = sorted(res.pulses, key=lambda p: p.t_s)

    def run(every_s: float) -> tuple[list[object], int]:
        clock = ReplayClock(0.0)
        cons = PipelineConsumer(lambda s: Pipeline(st, clock, s, tick_every_s=every_s))
        ticks = {"by_pulses": 0}
        real_tick = cons.pipeline.tick

        def counted() -> list[object]:
            ticks["by_pulses"] += 1
            return real_tick()  # type: ignore[return-value]

        shots: list[object] = []
        t = pulses[0].t_s
        for p in pulses:
            while t + 0.25 < p.t_s:  # the server's ticker
                t += 0.25
                clock.advance_to(t)
                shots += cons.tick()[0]
            clock.advance_to(p.t_s)
            cons.pipeline.tick = counted  # type: ignore[method-assign]
            shots += cons.feed(p)[0]
            cons.pipeline.tick = real_tick  # type: ignore[method-assign]
        for _ in range(400):
            clock.advance_by(0.25)
            shots += cons.tick()[0]
        ids = sorted((s.shot_id, tuple(sorted(s.pulse_ids))) for s in shots)  # type: ignore[attr-defined]
        return ids, ticks["by_pulses"]

    every_pulse, n_every = run(0.0)
    live, n_live = run(LIVE_TICK_EVERY_S)
    assert len(every_pulse) == sum(1 for e in res.truth.events if e.is_gunshot)
    assert n_every == len(pulses)
    assert live == every_pulse
    assert n_live < 0.7 * n_every, (n_live, n_every)
