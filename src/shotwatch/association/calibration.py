"""How far a deployment's propagation model is off, measured from its own located shots.

The associator's straight-ray, still-air model misses wind, temperature error, terrain and
buildings. Between two sensors that heard one shot the error in their arrival-time difference
is at most ``(|w| + |dc|) / c`` of the sound's travel time between the sensors (wind ``w``,
speed error ``dc``: both move the two paths by their difference, which the sensors' separation
bounds). ``AssociationSettings.propagation_error`` is that share; new shots are nucleated with
``pick_tolerance_s`` plus it (ADR 0018).

It differs between cities and between neighbourhoods of one (a hillside network hears shots
over buildings and valleys; a flat grid does not), so it is measured where the network runs:
from shots it located with many sensors, no ground truth involved. For each such shot, the
latest inlier arrival (the one a new shot is nucleated from) against every other inlier: the
part of their residual difference beyond the pick tolerance, per second of travel time
between their sensors. The returned share keeps ``quantile`` of those pairs inside the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from shotwatch.core.model import Sensor, ShotLocation


@dataclass(frozen=True)
class PropagationCalibration:
    """The measured share and what it rests on."""

    propagation_error: float
    shots: int
    pairs: int
    #: share of pairs already inside the pick tolerance alone
    inside_pick_tolerance: float


def pair_excess(
    shot: ShotLocation,
    sensors: Mapping[str, Sensor],
    *,
    c_mps: float,
    pick_tolerance_s: float,
    min_inliers: int = 6,
    cap: float = 0.05,
) -> list[float]:
    """One shot's pairs (latest inlier arrival against each other inlier): the share of the
    travel time between their sensors by which their residuals differ beyond the pick
    tolerance (0 inside it). Empty for shots with fewer than ``min_inliers`` inliers."""
    if c_mps <= 0 or pick_tolerance_s < 0:
        raise ValueError("c_mps must be positive and pick_tolerance_s not negative")
    out = set(shot.outliers)
    rows = [
        (sensors[s], shot.residuals_s[p])
        for s, p in zip(shot.sensors, shot.pulse_ids, strict=True)
        if p not in out and s in sensors and p in shot.residuals_s
    ]
    if len(rows) < min_inliers:
        return []
    dist = [math.hypot(s.x_m - shot.x_m, s.y_m - shot.y_m) for s, _ in rows]
    a = int(np.argmax(dist))
    anchor, r_a = rows[a]
    excess: list[float] = []
    for k, (sen, r_k) in enumerate(rows):
        if k == a:
            continue
        dev = abs(r_k - r_a)
        if dev <= pick_tolerance_s:
            excess.append(0.0)
            continue
        sep_s = math.hypot(sen.x_m - anchor.x_m, sen.y_m - anchor.y_m) / c_mps
        excess.append(min(cap, (dev - pick_tolerance_s) / max(sep_s, 1e-3)))
    return excess


def propagation_error_from(
    excess: Iterable[float], *, shots: int, quantile: float = 0.95, min_pairs: int = 50
) -> PropagationCalibration | None:
    """The share keeping ``quantile`` of the pooled pairs inside the window (None when fewer
    than ``min_pairs``)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    v = np.fromiter(excess, dtype=float)
    if len(v) < min_pairs:
        return None
    return PropagationCalibration(
        round(float(np.quantile(v, quantile)), 5), shots, len(v), float(np.mean(v == 0.0))
    )


def pooled_excess(
    shots: Iterable[ShotLocation],
    sensors: Mapping[str, Sensor],
    *,
    c_mps: float | None,
    pick_tolerance_s: float,
    min_inliers: int = 6,
) -> tuple[list[float], int]:
    """Every shot's :func:`pair_excess` pooled, and how many shots gave pairs. ``c_mps``
    None: each shot's own speed of sound."""
    excess: list[float] = []
    n = 0
    for shot in shots:
        e = pair_excess(
            shot,
            sensors,
            c_mps=shot.speed_of_sound_mps if c_mps is None else c_mps,
            pick_tolerance_s=pick_tolerance_s,
            min_inliers=min_inliers,
        )
        n += bool(e)
        excess += e
    return excess, n


def calibrate_propagation_error(
    shots: Iterable[ShotLocation],
    sensors: Mapping[str, Sensor],
    *,
    c_mps: float | None,
    pick_tolerance_s: float,
    quantile: float = 0.95,
    min_inliers: int = 6,
    min_pairs: int = 50,
) -> PropagationCalibration | None:
    """``propagation_error`` from located shots (see the module doc); None when fewer than
    ``min_pairs`` pairs come from shots with ``min_inliers`` or more inlier sensors."""
    excess, n = pooled_excess(
        shots, sensors, c_mps=c_mps, pick_tolerance_s=pick_tolerance_s, min_inliers=min_inliers
    )
    return propagation_error_from(excess, shots=n, quantile=quantile, min_pairs=min_pairs)
