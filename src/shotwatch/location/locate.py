"""Pulses -> :class:`~shotwatch.core.model.ShotLocation`: the model-level shell around the
array solver in :mod:`shotwatch.location.solver`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from shotwatch.core.ids import stable_id
from shotwatch.core.model import Ellipse, Provenance, Pulse, Sensor, ShotLocation
from shotwatch.core.settings import LocationSettings
from shotwatch.location.solver import (
    FloatArray,
    SolverConfig,
    ellipse_90,
    radius_90,
    solve_tdoa,
)

ALGORITHM = "tdoa-irls-asymmetric"
VERSION = "1"


def solver_config(settings: LocationSettings, dims: int) -> SolverConfig:
    return SolverConfig(
        dims=dims,
        pick_sigma_s=settings.pick_sigma_s,
        late_scale_s=settings.late_scale_s,
        early_scale_s=settings.early_scale_s,
        model_sigma_s=settings.model_sigma_s,
    )


def earliest_per_sensor(pulses: Sequence[Pulse]) -> list[Pulse]:
    """One pulse per sensor, the earliest (later ones on the same sensor are echoes)."""
    best: dict[str, Pulse] = {}
    for p in pulses:
        q = best.get(p.sensor)
        if q is None or p.t_s < q.t_s:
            best[p.sensor] = p
    return sorted(best.values(), key=lambda p: (p.t_s, p.sensor))


def ambiguity_penalty(
    xy: FloatArray,
    pulses: Sequence[Pulse],
    silent_sensors: Sequence[Sensor],
    *,
    hearing_range_m: float = math.inf,
) -> float:
    """Evidence against a candidate source position (lower is more plausible), in nats-like
    points.

    * Every reporting sensor heard the shot, and a gun is heard less often the farther away
      it is: each reporting sensor costs ``softplus((d - R) / (R / 4))`` with ``R`` the
      ``hearing_range_m`` (distance of a one-half chance of hearing; ~0.13 points at R/2,
      0.69 at R, 2 at 1.5 R). Of two exact solutions, the one far out beyond the sensors
      loses. On the Pittsburgh three-sensor cuts this is the strongest single piece of
      evidence (ADR 0014); ``inf`` switches it off.
    * Each sensor that did **not** hear the shot costs up to two points, the more the closer
      it is to the candidate relative to the median reporting sensor (a near sensor should
      have heard it): ``2 * max(0, 1 - d_silent / d_median_reporting)``.
    * The spread (dB) of ``level + 20 log10(distance)`` over reporting sensors: with
      spherical spreading a true source gives one source level; the wrong mirror image
      mixes near and far. Weighted 1 point per 6 dB (weak: real levels scatter ~7 dB).
    """
    pos = np.array([[p.x_m, p.y_m] for p in pulses])
    d = np.hypot(pos[:, 0] - xy[0], pos[:, 1] - xy[1])
    penalty = 0.0
    if math.isfinite(hearing_range_m) and hearing_range_m > 0:
        penalty += float(np.sum(np.logaddexp(0.0, (d - hearing_range_m) / (hearing_range_m / 4))))
    if silent_sensors:
        d_ref = max(float(np.median(d)), 1.0)
        sil = np.array([[s.x_m, s.y_m] for s in silent_sensors])
        ds = np.hypot(sil[:, 0] - xy[0], sil[:, 1] - xy[1])
        penalty += 2.0 * float(np.sum(np.clip(1.0 - ds / d_ref, 0.0, 1.0)))
    levels = np.array([p.level_db_spl for p in pulses])
    ok = np.isfinite(levels)
    if ok.sum() >= 2:
        src = levels[ok] + 20.0 * np.log10(np.maximum(d[ok], 1.0))
        penalty += float(np.std(src)) / 6.0
    return penalty


def locate(
    pulses: Sequence[Pulse],
    *,
    c_mps: float,
    dims: int | None = None,
    settings: LocationSettings | None = None,
    created_s: float = 0.0,
    silent_sensors: Sequence[Sensor] = (),
    start_xy: tuple[float, float] | None = None,
    source_z_m: float | None = None,
) -> ShotLocation | None:
    """Locate one shot from its associated pulses (at most one per sensor is used: the
    earliest). Returns ``None`` when fewer than ``dims + 1`` sensors took part or the fit
    did not produce a finite position.

    ``silent_sensors`` are sensors known to be in service near the shot that did not report
    it; they only break a three-sensor (two-solution) ambiguity. ``start_xy`` (e.g. the
    associator's grid node) skips the global grid search unless the set is minimal.
    """
    settings = settings or LocationSettings()
    dims = dims or settings.dims
    if not math.isfinite(c_mps) or not 250.0 <= c_mps <= 400.0:
        raise ValueError(f"speed of sound must be within 250..400 m/s, got {c_mps}")
    use = earliest_per_sensor(pulses)
    if len(use) < 3:
        return None
    if dims == 3 and len(use) < settings.height_min_sensors:
        # Too few arrivals to also solve the height: x, y with the height at the sensors'
        # median (still slant 3-D distances), which also keeps 3-sensor sets locatable.
        dims = 2
    pos = np.array([[p.x_m, p.y_m, p.z_m] for p in use])
    t = np.array([p.t_s for p in use])
    cfg = solver_config(settings, dims)

    def prefer(xyz: FloatArray) -> float:
        return ambiguity_penalty(
            xyz[:2], use, silent_sensors, hearing_range_m=settings.hearing_range_m
        )

    tol_s = max(3 * settings.pick_sigma_s, 0.005)
    sol = solve_tdoa(
        pos, t, c_mps, cfg, tol_s=tol_s, start_xy=start_xy, source_z_m=source_z_m, prefer=prefer
    )
    if dims == 3 and settings.height_min_evidence > 0:
        # Keep the solved height only when the arrivals ask for it: the fixed-height solve
        # from the same start must fit clearly worse (likelihood ratio against chi-square
        # with one degree of freedom). On a near-flat array the height is a free direction
        # that soaks up timing error; on a hillside it removes a real misfit (ADR 0014).
        cfg2 = solver_config(settings, 2)
        start2 = (float(sol.xyz_m[0]), float(sol.xyz_m[1]))
        flat = solve_tdoa(
            pos, t, c_mps, cfg2, tol_s=tol_s, start_xy=start2, source_z_m=source_z_m, prefer=prefer
        )
        # F-test form: drop of the weighted squared residuals (the 3-D fit's robust weights
        # for both, so an NLOS arrival counts alike) over the 3-D fit's own error scale.
        w = sol.weights
        drop = float(np.sum(w * flat.residuals_s**2) - np.sum(w * sol.residuals_s**2))
        lr = drop / max(sol.sigma_s, settings.pick_sigma_s) ** 2
        if lr < settings.height_min_evidence and np.all(np.isfinite(flat.xyz_m)):
            sol, dims, cfg = flat, 2, cfg2
    xyz = sol.xyz_m
    if not np.all(np.isfinite(xyz)) or not math.isfinite(sol.t0_s):
        return None
    ambiguous = sol.ambiguous
    alternative: tuple[float, float] | None = None
    if ambiguous:
        other = sol.alternatives[0]
        alternative = (float(other[0]), float(other[1]))

    cov = sol.covariance
    cov_xy = cov[:2, :2]
    if np.all(np.isfinite(cov_xy)):
        semi_major, semi_minor, az = ellipse_90(cov_xy)
        ellipse: Ellipse | None = Ellipse(semi_major, semi_minor, az, 0.9)
        uncertainty = radius_90(cov_xy)
    else:
        ellipse, uncertainty = None, math.inf
    residuals = {p.pulse_id: float(r) for p, r in zip(use, sol.residuals_s, strict=True)}
    outliers = tuple(p.pulse_id for p, ok in zip(use, sol.inliers, strict=True) if not ok)
    n_in = int(np.sum(sol.inliers))
    in_r = sol.residuals_s[sol.inliers]
    rms = float(np.sqrt(np.mean(in_r * in_r))) if n_in else sol.rms_s
    quality = _quality(
        n_in,
        n=len(use),
        rms_s=rms,
        uncertainty_m=uncertainty,
        dims=dims,
        pick_sigma_s=settings.pick_sigma_s,
        ambiguous=ambiguous,
    )
    z_m = float(xyz[2])
    shot_id = stable_id("shot", tuple(sorted(residuals)), round(sol.t0_s, 4))
    return ShotLocation(
        shot_id=shot_id,
        t0_s=float(sol.t0_s),
        x_m=float(xyz[0]),
        y_m=float(xyz[1]),
        z_m=z_m,
        pulse_ids=tuple(p.pulse_id for p in use),
        sensors=tuple(p.sensor for p in use),
        residuals_s=residuals,
        residual_rms_s=rms,
        uncertainty_m=float(uncertainty),
        ellipse=ellipse,
        covariance=tuple(tuple(float(v) for v in row) for row in cov),
        dims=dims,
        quality=quality,
        outliers=outliers,
        ambiguous=ambiguous,
        alternative_xy_m=alternative,
        speed_of_sound_mps=c_mps,
        provenance=Provenance.automatic(ALGORITHM, VERSION, created_s),
    )


def _quality(
    n_in: int,
    *,
    n: int,
    rms_s: float,
    uncertainty_m: float,
    dims: int,
    pick_sigma_s: float,
    ambiguous: bool,
) -> float:
    """0..1: redundancy (inliers beyond the minimum), inlier share, fit and spread."""
    redundancy = min(1.0, max(0, n_in - dims) / 4.0)
    share = n_in / max(n, 1)
    fit = math.exp(-max(0.0, rms_s - pick_sigma_s) / (4 * pick_sigma_s))
    spread = 1.0 / (1.0 + (uncertainty_m / 25.0) ** 2) if math.isfinite(uncertainty_m) else 0.0
    q = redundancy * share * fit * (0.5 + 0.5 * spread)
    return round(q * (0.5 if ambiguous else 1.0), 4)
