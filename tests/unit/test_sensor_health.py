from __future__ import annotations

import numpy as np
import pytest

from shotwatch.sensor.health import AlertKind, HealthMonitor, HealthThresholds, NoiseTracker

T0 = 1_800_000_000.0


def _hb(**kw: object) -> dict[str, object]:
    body: dict[str, object] = {
        "clock_error_s": 0.0004,
        "clock_synced": True,
        "noise_floor_dbfs": -60.0,
        "clipped_fraction": 0.0,
        "position": {"x_m": 10.0, "y_m": 20.0, "z_m": 8.0},
    }
    body.update(kw)
    return body


def _kinds(alerts: list) -> set[tuple[str, bool]]:  # type: ignore[type-arg]
    return {(str(a.kind), a.raised) for a in alerts}


def test_offline_then_back() -> None:
    mon = HealthMonitor(
        HealthThresholds(offline_after_s=300), registered={"A": {"x_m": 10.0, "y_m": 20.0}}
    )
    assert _kinds(mon.check(T0)) == {("offline", True)}  # registered, never heard
    assert _kinds(mon.observe("A", _hb(), T0 + 1)) == {("offline", False)}
    assert mon.check(T0 + 200) == []
    alerts = mon.check(T0 + 302)
    assert _kinds(alerts) == {("offline", True)} and "silent for 301 s" in alerts[0].detail
    assert mon.check(T0 + 400) == []  # raised once, not every check


def test_degraded_conditions_and_clearing() -> None:
    mon = HealthMonitor()
    for i in range(10):
        assert mon.observe("A", _hb(noise_floor_dbfs=-60.0 + 0.5 * (i % 2)), T0 + i) == []
    a = mon.observe("A", _hb(clock_synced=False), T0 + 20)
    assert _kinds(a) == {("clock_unsynchronized", True)} and a[0].degraded
    a = mon.observe("A", _hb(clock_error_s=0.02), T0 + 21)
    assert a == []  # still unsynchronized: not raised again
    assert _kinds(mon.observe("A", _hb(), T0 + 22)) == {("clock_unsynchronized", False)}
    a = mon.observe("A", _hb(noise_floor_dbfs=-40.0), T0 + 23)
    assert (
        _kinds(a) == {("noise_floor_jump", True)} and "+19.9 dB over baseline -59.9" in a[0].detail
    )
    a = mon.observe("A", _hb(clipped_fraction=0.02), T0 + 24)
    assert ("clipping", True) in _kinds(a) and ("noise_floor_jump", False) in _kinds(a)
    assert mon.active("A") == {AlertKind.CLIPPING}


def test_moved_local_and_geographic() -> None:
    mon = HealthMonitor(
        registered={
            "A": {"x_m": 10.0, "y_m": 20.0, "z_m": 8.0},
            "B": {"lat_deg": 40.0, "lon_deg": -73.9},
        }
    )
    assert mon.observe("A", _hb(position={"x_m": 14.0, "y_m": 20.0, "z_m": 8.0}), T0) == []
    a = mon.observe("A", _hb(position={"x_m": 25.0, "y_m": 20.0, "z_m": 8.0}), T0 + 1)
    assert _kinds(a) == {("moved", True)} and "15.0 m" in a[0].detail
    a = mon.observe("B", _hb(position={"lat_deg": 40.0003, "lon_deg": -73.9}), T0)
    assert ("moved", True) in _kinds(a)  # about 33 m north
    back = mon.observe("B", _hb(position={"lat_deg": 40.00001, "lon_deg": -73.9}), T0 + 1)
    assert _kinds(back) == {("moved", False)}


def test_noise_tracker_measures_floor_and_clipping() -> None:
    rng = np.random.default_rng(1)
    tr = NoiseTracker(12000)
    x = (rng.normal(0, 0.01, 12000 * 5) * 32768).astype(np.int16)
    x[1000:1010] = 32767
    tr.update(x[:7001])
    tr.update(x[7001:])
    assert tr.noise_floor_dbfs == pytest.approx(-40.0, abs=1.5)
    assert tr.clipped_fraction_and_reset() == pytest.approx(10 / x.size)
    assert tr.clipped_fraction_and_reset() == 0.0


def test_noise_floor_ignores_digital_silence_and_waits_for_data() -> None:
    tr = NoiseTracker(12000)
    tr.update(np.zeros(6000, dtype=np.int16))
    assert tr.noise_floor_dbfs is None
    rng = np.random.default_rng(2)
    tr.update((rng.normal(0, 0.001, 6000) * 32768).astype(np.int16))
    assert tr.noise_floor_dbfs is None  # half a second of sound is not enough
    tr.update((rng.normal(0, 0.001, 12000) * 32768).astype(np.int16))
    assert tr.noise_floor_dbfs == pytest.approx(-60.0, abs=1.5)
