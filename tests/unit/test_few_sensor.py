"""Few-sensor grouping of picks into shots (signal.few_sensor), on synthetic arrivals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shotwatch.core.model import Provenance, Pulse, Sensor
from shotwatch.signal.few_sensor import FewSensorGrouper, triple_sources

C = 340.0


def test_triple_sources_recovers_the_source() -> None:
    p = np.array([[0.0, 0.0], [400.0, 30.0], [120.0, 350.0]])
    src = np.array([150.0, 120.0])
    t = 5.0 + np.hypot(*(p - src).T) / C
    sols = triple_sources(p, t, C)
    assert sols, "no solution"
    best = min(sols, key=lambda s: math.hypot(s[0] - src[0], s[1] - src[1]))
    assert best[0] == pytest.approx(src[0], abs=1e-6)
    assert best[1] == pytest.approx(src[1], abs=1e-6)
    assert best[2] == pytest.approx(5.0, abs=1e-9)


def test_triple_sources_rejects_impossible_delays() -> None:
    p = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    # 1 s between sensors 100 m apart: no source can do that.
    assert triple_sources(p, np.array([0.0, 1.0, 1.0]), C) == []


def _pulse(s: Sensor, t: float, snr: float) -> Pulse:
    return Pulse(
        pulse_id=f"{s.serial}-{t:.6f}",
        sensor=s.serial,
        t_s=t,
        x_m=s.x_m,
        y_m=s.y_m,
        z_m=0.0,
        snr_db=snr,
        level_db_spl=90.0,
        clock_error_s=0.0,
        provenance=Provenance.automatic("test", "1", 0.0),
    )


def test_two_rounds_with_echoes_and_a_late_sensor() -> None:
    rng = np.random.default_rng(7)
    sensors = [
        Sensor("A", 0.0, 0.0, 0.0),
        Sensor("B", 600.0, 50.0, 0.0),
        Sensor("C", 250.0, 520.0, 0.0),
        Sensor("D", -300.0, 400.0, 0.0),
        Sensor("E", 450.0, -380.0, 0.0),
    ]
    src = (180.0, 140.0)
    pulses: list[Pulse] = []
    for t0 in (10.0, 10.6):
        for s in sensors:
            ta = t0 + math.hypot(s.x_m - src[0], s.y_m - src[1]) / C
            ta += rng.normal(0, 0.0007)
            if s.serial == "D":
                ta += 0.02  # non-line-of-sight: late, weaker
            pulses.append(_pulse(s, ta, 30.0 if s.serial != "D" else 15.0))
            # Two weaker echoes per sensor within 0.3 s.
            for lag in rng.uniform(0.03, 0.3, size=2):
                pulses.append(_pulse(s, ta + lag, 12.0))
    # An unrelated impulse at one sensor.
    pulses.append(_pulse(sensors[0], 13.0, 20.0))
    shots = FewSensorGrouper(sensors, C).run(pulses)
    good = [s for s in shots if math.hypot(s.x_m - src[0], s.y_m - src[1]) < 10.0]
    assert len(good) == 2
    assert sorted(round(s.t0_s, 1) for s in good) == [10.0, 10.6]
    assert all(s.n_sensors >= 4 for s in good)


def test_too_few_sensors_gives_nothing() -> None:
    sensors = [Sensor("A", 0.0, 0.0, 0.0), Sensor("B", 100.0, 0.0, 0.0)]
    pulses = [_pulse(sensors[0], 1.0, 30.0), _pulse(sensors[1], 1.1, 30.0)]
    assert FewSensorGrouper(sensors, C).run(pulses) == []
