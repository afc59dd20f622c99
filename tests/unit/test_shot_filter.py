"""ShotFilter: reverberation duplicates and echo sets are dropped, real rounds and a second
shooter are kept (synthetic geometry, located by the real solver)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shotwatch.core.model import Pulse, ShotLocation
from shotwatch.location import ShotFilter, locate

C = 340.0
RNG = np.random.default_rng(7)
SENSORS = np.c_[RNG.uniform(-600, 600, (12, 2)), np.zeros(12)]


def _shot(
    tag: str,
    src: tuple[float, float],
    t0: float,
    idx: Sequence[int],
    extra_s: np.ndarray | None = None,
) -> tuple[ShotLocation, dict[str, Pulse]]:
    pos = SENSORS[list(idx)]
    d = np.hypot(pos[:, 0] - src[0], pos[:, 1] - src[1])
    t = t0 + d / C + (extra_s if extra_s is not None else 0.0)
    pulses = [
        Pulse(f"{tag}{i}", f"S{i}", float(tt), float(p[0]), float(p[1]), 0.0)
        for i, tt, p in zip(idx, t, pos, strict=True)
    ]
    shot = locate(pulses, c_mps=C, dims=2)
    assert shot is not None
    return shot, {p.pulse_id: p for p in pulses}


def test_another_round_from_the_same_place_is_kept() -> None:
    f = ShotFilter()
    a, pa = _shot("a", (50.0, 20.0), 10.0, range(12))
    b, pb = _shot("b", (51.0, 19.0), 10.4, range(12))
    assert f.keep(a, pa) and f.keep(b, pb)


def test_a_near_set_with_scattered_lags_is_a_reverberation_duplicate() -> None:
    f = ShotFilter()
    a, pa = _shot("a", (50.0, 20.0), 10.0, range(12))
    # 20 m away, 60 ms later, with the lags at shared sensors scattered by tens of ms, as
    # reverberation gives (each pulse is its own late copy, the set still fits a source).
    b, pb = _shot("b", (68.0, 28.0), 10.06, range(8))
    lags = [pb[f"b{i}"].t_s - pa[f"a{i}"].t_s for i in range(8)]
    q75, q25 = np.percentile(lags, [75, 25])
    assert q75 - q25 > f.tol_s  # the premise: scattered, not one common lag
    assert f.keep(a, pa)
    assert not f.keep(b, pb)
    assert f.stats.reverberation_duplicates == 1


def test_a_weak_far_set_in_the_echo_tail_is_dropped_a_strong_one_kept() -> None:
    a, pa = _shot("a", (50.0, 20.0), 10.0, range(12))
    # Far away (~430 m), 1.3 s later, heard by 6 of the same sensors: at every one of them
    # within the echo tail after the first shot's pulse.
    few = [1, 4, 5, 8, 10, 11]
    weak, pw = _shot("w", (350.0, -250.0), 11.3, few)
    f = ShotFilter()
    assert f.keep(a, pa)
    assert all(0 < pw[f"w{i}"].t_s - pa[f"a{i}"].t_s <= f.tail_s for i in few)
    assert not f.keep(weak, pw)
    assert f.stats.echo_sets == 1
    # A second shooter heard as widely as the first is not an echo set.
    strong, ps = _shot("s", (350.0, -250.0), 11.3, range(12))
    g = ShotFilter()
    assert g.keep(a, pa) and g.keep(strong, ps)


def test_shots_outside_the_echo_tail_do_not_interact() -> None:
    f = ShotFilter()
    a, pa = _shot("a", (50.0, 20.0), 10.0, range(12))
    late, pl = _shot("l", (350.0, -250.0), 10.0 + f.tail_s + 0.5, range(5))
    assert f.keep(a, pa) and f.keep(late, pl)
