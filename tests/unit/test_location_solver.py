"""TDOA solver on synthetic exact geometry: recovery, outliers, ambiguity, uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shotwatch.core.model import EvaluationMode, Pulse, Sensor
from shotwatch.core.settings import LocationSettings
from shotwatch.location import locate, solve_tdoa
from shotwatch.location.solver import SolverConfig, radius_90

C = 340.0


def _layout(n: int, seed: int, spread_m: float = 800.0, z_spread_m: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-spread_m, spread_m, (n, 3))
    pos[:, 2] = rng.uniform(0, z_spread_m, n) if z_spread_m else 0.0
    return pos


def _times(pos: np.ndarray, src: np.ndarray, t0: float, dims: int) -> np.ndarray:
    d = np.linalg.norm(pos[:, :dims] - src[:dims], axis=1)
    return t0 + d / C


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_2d_recovers_source_and_origin_time(seed: int) -> None:
    pos = _layout(8, seed)
    src = np.array([120.0, -75.0, 0.0])
    t = _times(pos, src, 1000.0, 2)
    sol = solve_tdoa(pos, t, C, SolverConfig(dims=2))
    assert math.hypot(*(sol.xyz_m[:2] - src[:2])) < 0.05
    assert abs(sol.t0_s - 1000.0) < 1e-4
    assert sol.rms_s < 1e-5
    assert not sol.ambiguous


def test_3d_recovers_elevated_source() -> None:
    pos = _layout(10, 7, z_spread_m=120.0)
    src = np.array([60.0, 40.0, 35.0])
    t = _times(pos, src, 50.0, 3)
    sol = solve_tdoa(pos, t, C, SolverConfig(dims=3, z_prior_sigma_m=1e6))
    assert np.linalg.norm(sol.xyz_m - src) < 0.5


def test_late_nlos_outliers_are_rejected() -> None:
    pos = _layout(10, 11)
    src = np.array([-200.0, 150.0, 0.0])
    t = _times(pos, src, 10.0, 2)
    rng = np.random.default_rng(0)
    t = t + rng.normal(0, 0.0005, len(t))
    t[[2, 6]] += np.array([0.045, 0.080])  # two non-line-of-sight arrivals, late
    sol = solve_tdoa(pos, t, C, SolverConfig(dims=2, late_scale_s=0.01))
    assert math.hypot(*(sol.xyz_m[:2] - src[:2])) < 1.5
    assert not sol.inliers[2] and not sol.inliers[6]
    assert sol.inliers.sum() == 8
    # Plain least squares on the same data is pulled far away: the robust loss matters.
    plain = solve_tdoa(pos, t, C, SolverConfig(dims=2, late_scale_s=10.0, early_scale_s=10.0))
    assert math.hypot(*(plain.xyz_m[:2] - src[:2])) > 3 * math.hypot(*(sol.xyz_m[:2] - src[:2]))


def _pulses(pos: np.ndarray, t: np.ndarray, levels: list[float] | None = None) -> list[Pulse]:
    return [
        Pulse(
            f"p{i}",
            f"S{i}",
            float(t[i]),
            *map(float, pos[i]),
            level_db_spl=math.nan if levels is None else levels[i],
        )
        for i in range(len(t))
    ]


def _ambiguous_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three sensors, source outside the triangle: two exact solutions exist."""
    pos = np.array([[-381.0, -322.0, 0.0], [-653.0, 160.0, 0.0], [-499.0, -712.0, 0.0]])
    src = np.array([100.0, -50.0, 0.0])
    return pos, src, _times(pos, src, 5.0, 2)


def test_three_sensors_ambiguity_is_flagged_with_alternative() -> None:
    pos, src, t = _ambiguous_case()
    sol = solve_tdoa(pos, t, C, SolverConfig(dims=2))
    assert sol.ambiguous and len(sol.alternatives) == 1
    cands = [sol.xyz_m, *sol.alternatives]
    assert min(math.hypot(*(c[:2] - src[:2])) for c in cands) < 0.5


def test_silent_sensor_evidence_chooses_the_true_solution() -> None:
    pos, src, t = _ambiguous_case()
    sol = solve_tdoa(pos, t, C, SolverConfig(dims=2))
    cands = [sol.xyz_m, *sol.alternatives]
    wrong = next(c for c in cands if math.hypot(*(c[:2] - src[:2])) > 5)
    # A sensor right next to the wrong solution heard nothing: evidence against it.
    silent = [Sensor("quiet", float(wrong[0]) + 20.0, float(wrong[1]))]
    shot = locate(_pulses(pos, t), c_mps=C, dims=2, silent_sensors=silent)
    assert shot is not None and shot.ambiguous
    assert math.hypot(shot.x_m - src[0], shot.y_m - src[1]) < 0.5
    assert shot.alternative_xy_m is not None
    assert math.hypot(shot.alternative_xy_m[0] - wrong[0], shot.alternative_xy_m[1] - wrong[1]) < 1


def test_locate_builds_model_object_with_provenance_and_uncertainty() -> None:
    pos = _layout(7, 5)
    src = np.array([10.0, 20.0, 0.0])
    rng = np.random.default_rng(3)
    t = _times(pos, src, 100.0, 2) + rng.normal(0, 0.001, 7)
    pulses = _pulses(pos, t)
    # A later echo on sensor S0 must be ignored (earliest per sensor).
    pulses.append(Pulse("echo", "S0", float(t[0]) + 0.3, *map(float, pos[0])))
    shot = locate(pulses, c_mps=C, dims=2, settings=LocationSettings(), created_s=42.0)
    assert shot is not None
    assert "echo" not in shot.pulse_ids and shot.n_sensors == 7
    assert shot.provenance is not None and shot.provenance.mode is EvaluationMode.AUTOMATIC
    assert shot.provenance.created_s == 42.0
    assert math.hypot(shot.x_m - 10, shot.y_m - 20) < 3 * shot.uncertainty_m
    assert 0 < shot.uncertainty_m < 20
    assert shot.ellipse is not None and shot.ellipse.semi_major_m >= shot.ellipse.semi_minor_m
    assert set(shot.residuals_s) == set(shot.pulse_ids)
    assert 0 < shot.quality <= 1


def test_too_few_sensors_gives_none() -> None:
    pos = _layout(2, 1)
    assert locate(_pulses(pos, np.array([1.0, 1.1])), c_mps=C, dims=2) is None


def test_radius_90_matches_isotropic_closed_form() -> None:
    # Isotropic Gaussian: P(R < r) = 1 - exp(-r^2 / 2 s^2)  ->  r90 = s * sqrt(2 ln 10).
    s = 3.0
    assert radius_90(np.eye(2) * s * s) == pytest.approx(s * math.sqrt(2 * math.log(10)), 1e-3)


def test_uncertainty_is_calibrated_by_monte_carlo() -> None:
    pos = _layout(8, 21)
    src = np.array([50.0, -40.0, 0.0])
    rng = np.random.default_rng(9)
    sigma = 0.0015
    inside = 0
    trials = 60
    for _ in range(trials):
        t = _times(pos, src, 0.0, 2) + rng.normal(0, sigma, len(pos))
        shot = locate(_pulses(pos, t), c_mps=C, dims=2, settings=LocationSettings())
        assert shot is not None
        inside += math.hypot(shot.x_m - src[0], shot.y_m - src[1]) <= shot.uncertainty_m
    assert inside / trials >= 0.75


def test_three_sensor_uncertainty_comes_from_the_model_error_prior() -> None:
    """Three sensors in 2-D fit exactly: the residuals say nothing about the error, so the
    reported 90 % circle rests on ``model_sigma_s`` (real urban arrivals scatter ~6 ms at
    the best fit). It scales with it, and with arrival errors of that size it holds the
    source about 90 % of the time (source inside the triangle: one solution)."""
    pos = np.array([[-400.0, -300.0, 0.0], [450.0, -250.0, 0.0], [0.0, 500.0, 0.0]])
    src = np.array([30.0, 20.0, 0.0])
    t = _times(pos, src, 0.0, 2)
    u = {}
    for ms in (0.0015, 0.006):
        shot = locate(_pulses(pos, t), c_mps=C, dims=2, settings=LocationSettings(model_sigma_s=ms))
        assert shot is not None
        u[ms] = shot.uncertainty_m
    assert u[0.006] == pytest.approx(4.0 * u[0.0015], rel=0.02)
    honest = LocationSettings(model_sigma_s=0.006)
    rng = np.random.default_rng(5)
    inside = 0
    trials = 80
    for _ in range(trials):
        noisy = t + rng.normal(0, 0.006, 3)
        shot = locate(_pulses(pos, noisy), c_mps=C, dims=2, settings=honest)
        assert shot is not None
        inside += math.hypot(shot.x_m - src[0], shot.y_m - src[1]) <= shot.uncertainty_m
    assert 0.8 <= inside / trials <= 0.98


def test_with_many_sensors_the_residuals_outweigh_the_model_error_prior() -> None:
    """Twenty sensors with 0.5 ms pick noise: the fit's own scale dominates the pooled
    variance (4 prior residuals against 17 spare ones), so the circle stays small."""
    pos = _layout(20, 4)
    src = np.array([-30.0, 60.0, 0.0])
    rng = np.random.default_rng(2)
    t = _times(pos, src, 0.0, 2) + rng.normal(0, 0.0005, 20)
    honest = LocationSettings(model_sigma_s=0.006)
    shot = locate(_pulses(pos, t), c_mps=C, dims=2, settings=honest)
    assert shot is not None
    none = locate(_pulses(pos, t), c_mps=C, dims=2, settings=LocationSettings(model_sigma_s=0.0))
    assert none is not None
    assert shot.uncertainty_m < 3.0 * none.uncertainty_m
    assert math.hypot(shot.x_m - src[0], shot.y_m - src[1]) <= shot.uncertainty_m
