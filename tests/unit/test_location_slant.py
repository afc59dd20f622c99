"""Slant distances: sensors at different heights (hills, roofs) are solved with their true
3-D path, in 2-D (height fixed at the sensors' median) and in 3-D (height solved)."""

from __future__ import annotations

import math

import numpy as np

from shotwatch.core.model import Pulse
from shotwatch.core.settings import LocationSettings
from shotwatch.location import locate

C = 340.0


def _pulses(pos: np.ndarray, src: np.ndarray) -> list[Pulse]:
    t = 3.0 + np.linalg.norm(pos - src, axis=1) / C
    return [Pulse(f"p{i}", f"S{i}", float(t[i]), *map(float, pos[i])) for i in range(len(pos))]


def _hilly(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-500, 500, (n, 3))
    pos[:, 2] = rng.uniform(-45, 45, n)  # ~90 m of relief, as in Pittsburgh
    return pos


def test_2d_uses_slant_distance_to_sensors_on_a_hillside() -> None:
    pos = _hilly(8, 3)
    src = np.array([60.0, -40.0, float(np.median(pos[:, 2]))])
    shot = locate(_pulses(pos, src), c_mps=C, dims=2)
    assert shot is not None and shot.dims == 2
    assert math.hypot(shot.x_m - src[0], shot.y_m - src[1]) < 0.5
    assert shot.z_m == float(np.median(pos[:, 2]))
    # Horizontal-only distances would leave a misfit of the height differences (metres).
    assert shot.residual_rms_s < 1e-4


def test_3d_solves_height_with_enough_sensors_and_falls_back_below() -> None:
    pos = _hilly(8, 5)
    # In a valley 47 m below the sensors' median height (as FP5 in Pittsburgh).
    src = np.array([-80.0, 120.0, -30.0])
    settings = LocationSettings(dims=3)
    shot = locate(_pulses(pos, src), c_mps=C, dims=3, settings=settings)
    assert shot is not None and shot.dims == 3
    assert math.hypot(shot.x_m - src[0], shot.y_m - src[1]) < 1.0
    few = locate(_pulses(pos[:4], src), c_mps=C, dims=3, settings=settings)
    assert few is not None and few.dims == 2  # 4 < height_min_sensors: height not solved
    three = locate(_pulses(pos[:3], src), c_mps=C, dims=3, settings=settings)
    assert three is not None and three.n_sensors == 3


def test_height_is_solved_on_a_hillside_not_on_a_flat_array() -> None:
    """dims=3 keeps the solved height only when the arrivals ask for it (ADR 0014): in a
    valley under hillside sensors the fixed-height fit leaves a misfit far above the pick
    noise; on a flat array (2 m of relief) the height is a free direction that would only
    soak up pick noise, so the fixed-height solve is kept."""
    rng = np.random.default_rng(11)
    settings = LocationSettings(dims=3)
    hill = _hilly(10, 7)
    valley = np.array([40.0, -60.0, float(np.median(hill[:, 2])) - 45.0])
    noisy = _pulses(hill, valley)
    noisy = [
        Pulse(p.pulse_id, p.sensor, p.t_s + float(rng.normal(0, 0.0005)), p.x_m, p.y_m, p.z_m)
        for p in noisy
    ]
    shot = locate(noisy, c_mps=C, dims=3, settings=settings)
    assert shot is not None and shot.dims == 3
    assert abs(shot.z_m - valley[2]) < 10.0
    assert math.hypot(shot.x_m - valley[0], shot.y_m - valley[1]) < 2.0
    flat = _hilly(10, 7)
    flat[:, 2] = rng.uniform(0.0, 2.0, len(flat))
    src = np.array([40.0, -60.0, 1.0])
    flat_pulses = [
        Pulse(p.pulse_id, p.sensor, p.t_s + float(rng.normal(0, 0.0015)), p.x_m, p.y_m, p.z_m)
        for p in _pulses(flat, src)
    ]
    shot = locate(flat_pulses, c_mps=C, dims=3, settings=settings)
    assert shot is not None and shot.dims == 2
    # With the evidence gate off the same data is solved in 3-D.
    always = LocationSettings(dims=3, height_min_evidence=0.0)
    assert (s3 := locate(flat_pulses, c_mps=C, dims=3, settings=always)) is not None
    assert s3.dims == 3
