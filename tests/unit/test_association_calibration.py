"""Measuring the propagation model's error from located shots (no truth involved)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shotwatch.association.calibration import (
    PropagationCalibration,
    calibrate_propagation_error,
    pair_excess,
    propagation_error_from,
)
from shotwatch.core.model import Pulse, Sensor, ShotLocation
from shotwatch.location import locate

C = 340.0


def _shots(speed_error: float, seed: int = 5, n: int = 30) -> tuple[list[ShotLocation], dict]:
    """Shots inside a 6 x 6 grid (300 m) heard by every sensor within 900 m, sound
    ``speed_error`` faster than the locator's speed, 0.5 ms picks; located by the product
    locator."""
    rng = np.random.default_rng(seed)
    g = np.arange(6) * 300.0
    sensors = {}
    for i, (x, y) in enumerate(zip(*(a.ravel() for a in np.meshgrid(g, g)), strict=True)):
        s = Sensor(f"S{i}", float(x + rng.uniform(-30, 30)), float(y + rng.uniform(-30, 30)), 0.0)
        sensors[s.serial] = s
    shots = []
    for k in range(n):
        sx, sy = rng.uniform(200, 1300, 2)
        pulses = []
        for s in sensors.values():
            d = math.hypot(s.x_m - sx, s.y_m - sy)
            if d > 900.0:
                continue
            t = 100.0 * k + d / (C * (1.0 + speed_error)) + rng.normal(0, 0.0005)
            pulses.append(Pulse(f"p{k}-{s.serial}", s.serial, t, s.x_m, s.y_m, s.z_m))
        shot = locate(pulses, c_mps=C, dims=2)
        assert shot is not None
        shots.append(shot)
    return shots, sensors


def test_still_air_measures_next_to_nothing() -> None:
    shots, sensors = _shots(0.0)
    cal = calibrate_propagation_error(shots, sensors, c_mps=C, pick_tolerance_s=0.002)
    assert cal is not None
    assert cal.shots == len(shots)
    assert cal.inside_pick_tolerance > 0.95
    assert cal.propagation_error < 0.0005


def test_a_speed_error_is_measured_as_such() -> None:
    """Sound 2 % faster than assumed: the fit absorbs part of it (the source and the origin
    time move), the rest shows as arrival differences growing with the sensors' separation."""
    still, sensors = _shots(0.0)
    warm, _ = _shots(0.02)
    a = calibrate_propagation_error(still, sensors, c_mps=C, pick_tolerance_s=0.002)
    b = calibrate_propagation_error(warm, sensors, c_mps=C, pick_tolerance_s=0.002)
    assert a is not None and b is not None
    assert b.propagation_error > 0.002
    assert b.propagation_error > 5 * max(a.propagation_error, 1e-4)
    assert b.propagation_error <= 0.02  # never more than the error itself
    assert b.inside_pick_tolerance < a.inside_pick_tolerance


def test_small_shots_and_too_little_data_give_nothing() -> None:
    shots, sensors = _shots(0.02, n=3)
    assert pair_excess(shots[0], sensors, c_mps=C, pick_tolerance_s=0.002, min_inliers=99) == []
    n_pairs = sum(len(pair_excess(s, sensors, c_mps=C, pick_tolerance_s=0.002)) for s in shots)

    def cal_with(min_pairs: int) -> PropagationCalibration | None:
        return calibrate_propagation_error(
            shots, sensors, c_mps=C, pick_tolerance_s=0.002, min_pairs=min_pairs
        )

    assert cal_with(n_pairs + 1) is None
    cal = cal_with(n_pairs)
    assert cal is not None and cal.pairs == n_pairs


@pytest.mark.parametrize("q", [0.0, 1.0, -0.5, 2.0])
def test_a_quantile_outside_0_1_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        propagation_error_from([0.0] * 100, shots=10, quantile=q)


def test_bad_speed_or_tolerance_is_refused() -> None:
    shots, sensors = _shots(0.0, n=1)
    with pytest.raises(ValueError, match="c_mps"):
        pair_excess(shots[0], sensors, c_mps=0.0, pick_tolerance_s=0.002)
    with pytest.raises(ValueError, match="pick_tolerance_s"):
        pair_excess(shots[0], sensors, c_mps=C, pick_tolerance_s=-1.0)
