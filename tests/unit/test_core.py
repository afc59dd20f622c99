from __future__ import annotations

import math

import pytest

from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.clock import ReplayClock
from shotwatch.core.errors import InputError
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Pulse, iso_utc, parse_utc


def test_local_frame_round_trip_is_millimetre_exact() -> None:
    frame = LocalFrame(41.8781, -87.6298, 180.0)
    e, n, u = frame.to_local(41.8881, -87.6198, 185.0)
    # 0.01 deg of latitude is ~1110 m; of longitude at 41.9 N ~829 m
    assert 1100 < n < 1120 and 820 < e < 840
    lat, lon, h = frame.to_geo(e, n, u)
    assert abs(lat - 41.8881) < 1e-8 and abs(lon + 87.6198) < 1e-8 and abs(h - 185.0) < 1e-3


def test_local_frame_rejects_bad_latitude() -> None:
    with pytest.raises(InputError, match="latitude"):
        LocalFrame(91.0, 0.0)


def test_speed_of_sound_follows_temperature() -> None:
    assert 331 < speed_of_sound_mps(0.0, 0.0) < 332
    assert speed_of_sound_mps(30.0) > speed_of_sound_mps(0.0) + 15
    with pytest.raises(InputError, match="temperature_c"):
        speed_of_sound_mps(math.nan)


def test_replay_clock_never_goes_back() -> None:
    clock = ReplayClock(100.0)
    clock.advance_to(105.0)
    clock.advance_to(101.0)
    assert clock.now() == 105.0
    with pytest.raises(ValueError):
        clock.advance_by(-1.0)


def test_utc_round_trip_keeps_microseconds() -> None:
    t = parse_utc("2018-12-19T00:49:27.467Z")
    assert iso_utc(t) == "2018-12-19T00:49:27.467000Z"


def test_pulse_rejects_non_finite_time_naming_the_field() -> None:
    with pytest.raises(InputError, match="t_s"):
        Pulse("p1", "S1", math.inf, 0.0, 0.0, 0.0)
    with pytest.raises(InputError, match="clock_error_s"):
        Pulse("p1", "S1", 1.0, 0.0, 0.0, 0.0, clock_error_s=-0.1)
