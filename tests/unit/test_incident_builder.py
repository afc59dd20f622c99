"""IncidentBuilder on constructed shot sequences: rounds, shooters, automatic fire, movement."""

from __future__ import annotations

import math

import numpy as np

from shotwatch.core.model import ShotLocation
from shotwatch.core.settings import IncidentSettings
from shotwatch.incidents import IncidentBuilder, fit_track

T0 = 1_780_000_000.0


def shot(
    sid: str, t_s: float, x_m: float, y_m: float, *, u_m: float = 4.0, pulses: int = 6
) -> ShotLocation:
    pids = tuple(f"{sid}-p{k}" for k in range(pulses))
    return ShotLocation(
        shot_id=sid,
        t0_s=T0 + t_s,
        x_m=x_m,
        y_m=y_m,
        z_m=0.0,
        pulse_ids=pids,
        sensors=tuple(f"S{k}" for k in range(pulses)),
        residuals_s=dict.fromkeys(pids, 0.0),
        residual_rms_s=0.0005,
        uncertainty_m=u_m,
        ellipse=None,
        covariance=None,
        dims=2,
        quality=1.0,
    )


def run(shots: list[ShotLocation], settings: IncidentSettings | None = None) -> list:
    b = IncidentBuilder(settings or IncidentSettings())
    out = []
    for s in sorted(shots, key=lambda s: s.t0_s):
        out += b.feed(s)
    return out + b.flush()


def noisy(rng: np.random.Generator, sigma_m: float = 2.0) -> tuple[float, float]:
    return (float(rng.normal(0, sigma_m)), float(rng.normal(0, sigma_m)))


def test_rounds_counted_and_duplicates_of_one_round_merged() -> None:
    rng = np.random.default_rng(1)
    shots = []
    for r in range(5):
        dx, dy = noisy(rng)
        shots.append(shot(f"r{r}", 0.6 * r, 100 + dx, 200 + dy))
    # a duplicate detection of round 2 (another pulse subset, 3 m away, 4 ms later)
    shots.append(shot("r2-dup", 1.2 + 0.004, 103, 201, pulses=4))
    # and one sharing a pulse with round 4
    s4 = shots[4]
    shots.append(
        ShotLocation(**{**{f: getattr(s4, f) for f in s4.__slots__}, "shot_id": "r4-again"})
    )
    (inc,) = run(shots)
    assert inc.rounds == 5
    assert inc.shooters == 1
    assert set(inc.extra["duplicate_shot_ids"]) == {"r2-dup", "r4-again"}  # type: ignore[arg-type]
    assert not inc.automatic
    assert inc.provenance is not None and inc.provenance.algorithm == "incident-builder"


def test_time_and_space_split_incidents_and_feed_returns_closed_ones_in_time() -> None:
    b = IncidentBuilder(IncidentSettings(max_gap_s=30.0, max_distance_m=250.0))
    assert b.feed(shot("a1", 0.0, 0, 0)) == []
    assert b.feed(shot("far1", 1.0, 2000, 0)) == []  # far away: a second open incident
    assert b.feed(shot("a2", 5.0, 5, 0)) == []
    closed = b.feed(shot("late", 100.0, 0, 0))  # both earlier incidents are now over
    assert [i.rounds for i in closed] == [2, 1]
    assert closed[0].start_s < closed[1].start_s
    (last,) = b.flush()
    assert last.shot_ids == ("late",)


def test_two_shooters_50_m_apart_are_separated() -> None:
    rng = np.random.default_rng(7)
    shots = []
    for r in range(4):
        dx, dy = noisy(rng, 3.0)
        shots.append(shot(f"a{r}", 0.7 * r, 0 + dx, 0 + dy))
        dx, dy = noisy(rng, 3.0)
        shots.append(shot(f"b{r}", 0.7 * r + 0.31, 50 + dx, 0 + dy))
    (inc,) = run(shots)
    assert inc.rounds == 8
    assert inc.shooters == 2
    xs = sorted(p[0] for p in inc.shooter_positions)
    assert abs(xs[0]) < 6 and abs(xs[1] - 50) < 6
    assert not inc.automatic  # interleaved shooters are not one fast cadence


def test_one_shooter_with_scatter_is_one_shooter() -> None:
    rng = np.random.default_rng(3)
    shots = [shot(f"s{r}", 0.5 * r, *noisy(rng, 4.0), u_m=8.0) for r in range(10)]
    (inc,) = run(shots)
    assert inc.shooters == 1 and inc.movement is None


def test_automatic_fire_flagged_from_cadence() -> None:
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.normal(1 / 12, 0.004, size=20))
    shots = [shot(f"s{k}", float(tk), *noisy(rng)) for k, tk in enumerate(t)]
    (inc,) = run(shots)
    assert inc.automatic
    assert inc.rounds == 20
    assert inc.cadence_rps is not None and 11 < inc.cadence_rps < 13
    # the same number of rounds, slowly: not automatic
    slow = [shot(f"q{k}", 0.5 * k, *noisy(rng)) for k in range(20)]
    (inc2,) = run(slow)
    assert not inc2.automatic


def test_moving_shooter_speed_and_heading() -> None:
    rng = np.random.default_rng(11)
    heading = math.radians(60.0)
    shots = []
    for k in range(8):
        d = 6.0 * k  # 6 m/s, one round a second
        dx, dy = noisy(rng, 2.0)
        shots.append(
            shot(f"m{k}", float(k), d * math.sin(heading) + dx, d * math.cos(heading) + dy)
        )
    (inc,) = run(shots)
    assert inc.shooters == 1
    assert inc.movement is not None
    err = (inc.movement.heading_deg - 60.0 + 180) % 360 - 180
    assert abs(err) < 15
    assert 4.5 < inc.movement.speed_mps < 7.5


def test_robust_fit_ignores_one_wild_location() -> None:
    t = np.arange(8.0)
    x = 2.0 * t
    y = np.zeros(8)
    x[3] += 60.0  # one badly located round
    fit = fit_track(t, x, y, np.full(8, 2.0))
    assert fit is not None and abs(fit.vx_mps - 2.0) < 0.5


def test_doubtful_shots_count_as_rounds_but_start_no_shooter() -> None:
    """Mixed pulse sets land far off with a large residual: they are rounds of the shooter
    firing then, not new shooters, and the burst is still automatic."""
    rng = np.random.default_rng(9)
    shots = []
    for k in range(16):
        t = k / 12.0
        if k % 3 == 1:
            bad = shot(f"x{k}", t, float(rng.uniform(-200, 200)), float(rng.uniform(80, 200)))
            shots.append(
                ShotLocation(
                    **{**{f: getattr(bad, f) for f in bad.__slots__}, "residual_rms_s": 0.008}
                )
            )
        else:
            shots.append(shot(f"g{k}", t, *noisy(rng)))
    (inc,) = run(shots)
    assert inc.rounds == 16
    assert inc.shooters == 1
    assert inc.automatic
    assert math.hypot(*inc.shooter_positions[0]) < 3.0
    strict = IncidentSettings(reliable_max_rms_s=0.01)
    (inc2,) = run(shots, strict)
    assert inc2.shooters > 1  # trusting those positions would invent shooters


def _with_rms(s: ShotLocation, rms_s: float) -> ShotLocation:
    return ShotLocation(**{**{f: getattr(s, f) for f in s.__slots__}, "residual_rms_s": rms_s})


def test_residual_gate_is_relative_to_the_incidents_best_shot() -> None:
    """Wind and a wrong temperature raise every round's residual alike (here 4.5-6 ms, above
    the absolute 4 ms gate): the rounds are still trusted and the moving track is found; a
    mixed set three times worse than the best round is still doubtful."""
    rng = np.random.default_rng(4)
    shots = []
    for k in range(6):
        dx, dy = noisy(rng, 1.0)
        rms = float(rng.uniform(0.0045, 0.006))
        shots.append(_with_rms(shot(f"m{k}", 1.0 * k, 8.0 * k + dx, dy), rms))
    shots.append(_with_rms(shot("mixed", 2.5, 150.0, 120.0), 0.015))
    (inc,) = run(shots)
    assert inc.rounds == 7
    assert inc.shooters == 1
    assert inc.movement is not None
    assert abs(inc.movement.heading_deg - 90.0) < 10.0
    assert inc.extra["shooters"][0]["doubtful_shot_ids"] == ["mixed"]  # type: ignore[index]
    # with no allowance above the best round, all but that one are doubtful, the track has
    # nothing to fit and the movement is lost (the gate matters)
    absolute = IncidentSettings(reliable_rms_ratio=1.0)
    (inc2,) = run(shots, absolute)
    assert inc2.movement is None


def test_doubtful_round_goes_to_the_shooter_whose_gate_it_falls_in() -> None:
    """Two shooters 50 m apart fire at the same time; B's doubtful (higher-residual) rounds
    land near B: they are B's rounds, not those of A (who fires then too and has more)."""
    shots = []
    for k in range(6):
        shots.append(shot(f"a{k}", 0.5 * k, 0.0, 0.0))
    for k in range(4):
        s = shot(f"b{k}", 0.5 * k + 0.2, 50.0, 0.0)
        shots.append(_with_rms(s, 0.0005 if k == 0 else 0.004 * (1 + k)))
    (inc,) = run(shots)
    assert inc.shooters == 2
    by_x = sorted(inc.extra["shooters"], key=lambda sh: sh["x_m"])  # type: ignore[arg-type]
    assert [sh["rounds"] for sh in by_x] == [6, 4]
    assert len(by_x[1]["doubtful_shot_ids"]) == 3


def test_fragmented_burst_is_still_automatic_but_two_whole_shooters_are_not() -> None:
    """Mixed pulse sets can scatter a 12 rounds/s burst over many 'shooters' that all fit
    equally well; when no shooter holds half the rounds the cadence is judged on all of them.
    Two real shooters firing 4 rounds/s each, interleaved, hold half each: not automatic."""
    rng = np.random.default_rng(3)
    burst = [
        shot(f"b{k}", k / 12.0, float(rng.uniform(-150, 150)), float(rng.uniform(-150, 150)))
        for k in range(18)
    ]
    (inc,) = run(burst)
    assert inc.shooters > 4  # the positions really are fragmented
    assert inc.automatic
    assert inc.cadence_rps is not None and abs(inc.cadence_rps - 12.0) < 1.0
    pair = [shot(f"a{k}", k / 4.0, 0.0, 0.0) for k in range(8)]
    pair += [shot(f"c{k}", k / 4.0 + 0.125, 50.0, 0.0) for k in range(8)]
    (inc2,) = run(pair)
    assert inc2.shooters == 2
    assert not inc2.automatic


def test_preview_only_builds_the_incidents_holding_the_named_shots() -> None:
    """A live server previews every open incident with the shots still forming; ``only``
    keeps the incidents that hold a named shot, each exactly as the full preview has it."""
    b = IncidentBuilder(IncidentSettings())
    for r in range(3):  # three open incidents 2 km apart
        b.feed(shot(f"a{r}", 0.5 * r, 0.0, 0.0))
        b.feed(shot(f"b{r}", 0.5 * r, 2000.0, 0.0))
        b.feed(shot(f"c{r}", 0.5 * r, 4000.0, 0.0))
    tentative = [
        shot("a-t", 1.6, 2.0, 1.0),
        shot("c-t", 1.6, 4001.0, 0.0),
        shot("n-t", 1.7, 0, 6e3),
    ]
    full = b.preview(tentative, created_s=T0 + 2, holding={"b2"})
    assert len(full) == 4  # a, b (holding), c, and the new one
    some = b.preview(tentative, created_s=T0 + 2, holding={"b2"}, only={"c-t", "b1"})
    by_id = {i.incident_id: i for i in full}
    assert sorted(i.incident_id for i in some) == sorted(
        i.incident_id for i in full if {"c-t", "b1"} & set(i.shot_ids)
    )
    assert len(some) == 2
    assert all(i == by_id[i.incident_id] for i in some)
    assert b.preview(tentative, created_s=T0 + 2, only=set()) == []


def _preview_by_scan(
    b: IncidentBuilder, tentative: list[ShotLocation], holding: set[str], seen: dict[str, int]
) -> list[list[str]]:
    """The preview's grouping written as the plain scan over every open group (reference);
    counts in ``seen`` the merges and the forming shots that joined only forming shots."""
    st = b.settings
    groups = [[list(o.shots), o.last_t_s] for o in b._open]
    touched = [g for g in groups if any(s.shot_id in holding for s in g[0])]
    for sh in sorted(tentative, key=lambda s: s.t0_s):
        joined = [
            g
            for g in groups
            if sh.t0_s - g[1] <= st.max_gap_s
            and any(math.hypot(s.x_m - sh.x_m, s.y_m - sh.y_m) <= st.max_distance_m for s in g[0])
        ]
        if not joined:
            joined = [[[], -math.inf]]
            groups.append(joined[0])
        elif all(s.shot_id.startswith("t") for s in joined[0][0]):
            seen["forming only"] += 1
        seen["merges"] += len(joined) - 1
        target = joined[0]
        for other in joined[1:]:
            target[0] += other[0]
            target[1] = max(target[1], other[1])
            groups = [g for g in groups if g is not other]
            touched = [g for g in touched if g is not other]
        target[0].append(sh)
        target[1] = max(target[1], sh.t0_s)
        if not any(g is target for g in touched):
            touched.append(target)
    return [sorted(s.shot_id for s in g[0]) for g in touched]


def test_preview_groups_as_the_plain_scan_does_on_a_busy_night() -> None:
    """The preview's array search gives the groups the scan over every open shot gives,
    forming shots that bridge two incidents, or join only other forming shots, included."""
    rng = np.random.default_rng(7)
    st = IncidentSettings()
    side = 12 * st.max_distance_m
    seen = {"merges": 0, "forming only": 0}
    for trial in range(20):
        b = IncidentBuilder(st)
        t = 0.0
        for k in range(150):
            t += float(rng.exponential(0.2))
            x, y = rng.uniform(0, side, 2)
            b.feed(shot(f"f{trial}-{k}", t, float(x), float(y)))
        tentative = [
            shot(
                f"t{trial}-{k}", t + float(rng.uniform(0, 3)), *map(float, rng.uniform(0, side, 2))
            )
            for k in range(80)
        ]
        holding = {f"f{trial}-{k}" for k in rng.choice(150, 5, replace=False)}
        got = b.preview(tentative, created_s=T0 + t, holding=holding)
        want = _preview_by_scan(b, tentative, holding, seen)
        assert [sorted(i.shot_ids) for i in got] == want
        # the open shots' places are kept between previews: a shot fed meanwhile counts
        b.feed(shot(f"g{trial}", t + 0.1, *map(float, rng.uniform(0, side, 2))))
        again = b.preview(tentative, created_s=T0 + t, holding=holding)
        assert [sorted(i.shot_ids) for i in again] == _preview_by_scan(b, tentative, holding, seen)
        assert [sorted(i.shot_ids) for i in b.preview([], created_s=T0 + t)] == []
    assert seen["merges"] >= 20 and seen["forming only"] >= 5
