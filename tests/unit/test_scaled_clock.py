from __future__ import annotations

import time

import pytest

from shotwatch.core.clock import ScaledClock


def test_scaled_clock_runs_speed_times_faster_from_its_origins() -> None:
    wall0 = time.time()
    clock = ScaledClock(1_000.0, 10.0, wall_origin_s=wall0 - 2.0)
    # two wall seconds have passed since the origin: twenty clock seconds
    assert clock.now() == pytest.approx(1_020.0, abs=0.5)
    assert clock.wall_of(1_020.0) == pytest.approx(wall0, abs=1e-9)
    assert clock.wall_of(clock.now()) == pytest.approx(time.time(), abs=0.05)


def test_scaled_clock_refuses_a_speed_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(0.0, 0.0)
