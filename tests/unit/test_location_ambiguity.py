"""Three sensors, two exact solutions: the shot says so and evidence picks the right one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shotwatch.core.model import Pulse, Sensor
from shotwatch.core.settings import LocationSettings
from shotwatch.location import locate, solve_tdoa
from shotwatch.location.locate import ambiguity_penalty
from shotwatch.location.solver import SolverConfig

C = 340.0
POS = np.array([[-381.0, -322.0, 0.0], [-653.0, 160.0, 0.0], [-499.0, -712.0, 0.0]])
SRC = np.array([100.0, -50.0, 0.0])


def _pulses(src: np.ndarray, levels_from: np.ndarray | None) -> list[Pulse]:
    d = np.linalg.norm(POS - src, axis=1)
    t = 5.0 + d / C
    lev = None
    if levels_from is not None:
        # Spherical spreading from a 130 dB (at 1 m) source at ``levels_from``.
        lev = 130.0 - 20.0 * np.log10(np.linalg.norm(POS - levels_from, axis=1))
    return [
        Pulse(
            f"p{i}",
            f"S{i}",
            float(t[i]),
            *map(float, POS[i]),
            level_db_spl=math.nan if lev is None else float(lev[i]),
        )
        for i in range(3)
    ]


def _mirror() -> np.ndarray:
    d = np.linalg.norm(POS - SRC, axis=1)
    sol = solve_tdoa(POS, 5.0 + d / C, C, SolverConfig(dims=2))
    assert sol.ambiguous
    cands = [sol.xyz_m, *sol.alternatives]
    return next(c for c in cands if math.hypot(*(c[:2] - SRC[:2])) > 5.0)


def test_both_solutions_fit_exactly_and_the_shot_carries_the_other() -> None:
    mirror = _mirror()
    # The mirror really is a second exact fit: identical arrival differences.
    d_true = np.linalg.norm(POS - SRC, axis=1)
    d_mirror = np.linalg.norm(POS[:, :2] - mirror[:2], axis=1)
    assert np.allclose(np.diff(d_true), np.diff(d_mirror), atol=0.05)
    shot = locate(_pulses(SRC, None), c_mps=C, dims=2)
    assert shot is not None and shot.ambiguous
    assert shot.alternative_xy_m is not None
    chosen = (shot.x_m, shot.y_m)
    other = shot.alternative_xy_m
    pair = sorted([chosen, other])
    expected = sorted([(float(SRC[0]), float(SRC[1])), (float(mirror[0]), float(mirror[1]))])
    for got, want in zip(pair, expected, strict=True):
        assert math.dist(got, want) < 1.0
    assert shot.quality <= 0.5  # an ambiguous shot is never reported as top quality


@pytest.mark.parametrize("truth_is_mirror", [False, True])
def test_levels_choose_the_solution_they_are_consistent_with(truth_is_mirror: bool) -> None:
    """Same arrival times either way; with the hearing-range evidence off, only the levels
    (spherical spreading from one source) say which of the two solutions is real."""
    mirror = _mirror()
    real = mirror if truth_is_mirror else SRC
    no_range = LocationSettings(hearing_range_m=math.inf)
    shot = locate(_pulses(SRC, levels_from=real), c_mps=C, dims=2, settings=no_range)
    assert shot is not None and shot.ambiguous
    assert math.hypot(shot.x_m - real[0], shot.y_m - real[1]) < 1.0


def test_hearing_range_prefers_the_solution_near_the_sensors_that_heard_it() -> None:
    """The true source sits inside the sensors' reach (170-510 m); its exact mirror is
    550-890 m out. No levels, no silent sensors: the hearing range alone decides (on the
    Pittsburgh three-sensor cuts it picks the right one of two exact fits ~4 times in 5),
    and the far fit is still reported as the alternative."""
    near = _mirror()  # the nearer of the two exact solutions of these arrival times
    d_near = np.linalg.norm(POS[:, :2] - near[:2], axis=1)
    d_far = np.linalg.norm(POS[:, :2] - SRC[:2], axis=1)
    assert d_near.max() < 550.0 < d_far.min()
    shot = locate(_pulses(near, None), c_mps=C, dims=2)
    assert shot is not None and shot.ambiguous and shot.alternative_xy_m is not None
    assert math.hypot(shot.x_m - near[0], shot.y_m - near[1]) < 1.0
    assert math.dist(shot.alternative_xy_m, (float(SRC[0]), float(SRC[1]))) < 1.0
    # The evidence itself: beyond the range each reporting sensor costs more.
    pulses = _pulses(near, None)
    assert ambiguity_penalty(near[:2], pulses, [], hearing_range_m=1000.0) < ambiguity_penalty(
        SRC[:2], pulses, [], hearing_range_m=1000.0
    )


@pytest.mark.parametrize("truth_is_mirror", [False, True])
def test_a_silent_sensor_in_range_outweighs_nothing(truth_is_mirror: bool) -> None:
    """A sensor in service right next to one solution heard nothing: choose the other."""
    mirror = _mirror()
    real, wrong = (mirror, SRC) if truth_is_mirror else (SRC, mirror)
    silent = [Sensor("quiet", float(wrong[0]) + 30.0, float(wrong[1]) - 10.0)]
    shot = locate(_pulses(SRC, None), c_mps=C, dims=2, silent_sensors=silent)
    assert shot is not None and shot.ambiguous
    assert math.hypot(shot.x_m - real[0], shot.y_m - real[1]) < 1.0


def test_silent_sensors_out_of_range_are_no_evidence() -> None:
    """A silent sensor farther from a candidate than every reporting sensor says nothing."""
    far = [Sensor("far", 5000.0, 5000.0)]
    pulses = _pulses(SRC, None)
    for cand in (SRC, _mirror()):
        assert ambiguity_penalty(cand[:2], pulses, far) == 0.0
        assert ambiguity_penalty(cand[:2], pulses, far) == ambiguity_penalty(cand[:2], pulses, [])
