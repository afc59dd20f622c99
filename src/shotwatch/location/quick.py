"""A quick robust TDOA refinement for hypotheses the associator is still growing.

The associator re-locates a candidate shot each time a pulse joins it, so this has to cost
tens of microseconds, not milliseconds: a few Gauss-Newton steps from a good start (the
closed-form triple solution or the previous fit) on the source's x, y and origin time, with
slant distances to sensors at their own heights and the source height fixed. Late arrivals
(non-line-of-sight paths) are down-weighted harder than early ones, as in the full solver
(:mod:`shotwatch.location.solver`), which still makes the final location.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class QuickFit:
    """A refined source: position, origin time, residuals (observed - predicted, s) and the
    2x2 horizontal covariance (m^2) at the pick sigma used."""

    x_m: float
    y_m: float
    z_m: float
    t0_s: float
    residuals_s: FloatArray
    cov_xy: FloatArray
    converged: bool

    @property
    def sigma_xy_m(self) -> float:
        """Root of the larger eigenvalue of the horizontal covariance."""
        tr = float(self.cov_xy[0, 0] + self.cov_xy[1, 1])
        det = float(self.cov_xy[0, 0] * self.cov_xy[1, 1] - self.cov_xy[0, 1] ** 2)
        big = 0.5 * tr + math.sqrt(max(0.25 * tr * tr - det, 0.0))
        return math.sqrt(max(big, 0.0))


def refine(
    pos: FloatArray,
    t: FloatArray,
    c_mps: float,
    x0: float,
    y0: float,
    *,
    z_m: float,
    sigma_s: float,
    late_s: float,
    early_s: float,
    iterations: int = 6,
    t0_start: float | None = None,
) -> QuickFit:
    """Refine (x, y, t0) from ``(x0, y0)`` for arrivals ``t`` (n,) at sensors ``pos`` (n, 3).

    Weights: 1 within ``[-early_s, late_s]`` of the prediction, falling as ``scale / |r|``
    beyond (Huber), so a late echo or an early chance pulse cannot drag the fit far. With
    exactly three arrivals the fit is exact and the covariance reflects geometry alone.
    ``t0_start`` (a previous fit's origin time) saves the median that otherwise starts it.
    """
    px = np.ascontiguousarray(pos[:, 0])
    py = np.ascontiguousarray(pos[:, 1])
    dz2 = (pos[:, 2] - z_m) ** 2
    x, y = float(x0), float(y0)
    if t0_start is None:
        d = np.sqrt((px - x) ** 2 + (py - y) ** 2 + dz2)
        o = t - d / c_mps
        t0 = float(np.partition(o, len(o) // 2)[len(o) // 2])
    else:
        t0 = float(t0_start)
    x, y, t0, normal, converged = _gauss_newton(
        px,
        py,
        dz2,
        np.ascontiguousarray(t, dtype=np.float64),
        c_mps,
        x,
        y,
        t0,
        late_s,
        early_s,
        iterations,
    )
    d = np.sqrt((px - x) ** 2 + (py - y) ** 2 + dz2)
    r = t - t0 - d / c_mps
    try:
        cov: FloatArray = np.asarray(np.linalg.inv(normal)[:2, :2], dtype=np.float64)
        cov *= sigma_s * sigma_s
    except np.linalg.LinAlgError:
        cov = np.full((2, 2), np.inf)
    if not np.all(np.isfinite(cov)):
        cov = np.full((2, 2), 1e12)
    return QuickFit(x, y, z_m, t0, r, cov, converged)


@njit(cache=True)
def _gauss_newton(  # noqa: PLR0917 (compiled: numba passes arguments by position)
    px: FloatArray,
    py: FloatArray,
    dz2: FloatArray,
    t: FloatArray,
    c: float,
    x: float,
    y: float,
    t0: float,
    late_s: float,
    early_s: float,
    iterations: int,
) -> tuple[float, float, float, FloatArray, bool]:
    """Gauss-Newton on (x, y, t0) with Huber weights (1 inside [-early_s, late_s], scale/|r|
    beyond), compiled: the associator calls it for every pulse that joins a shot."""
    n = t.shape[0]
    inv_c = 1.0 / c
    normal = np.eye(3)
    converged = False
    for _ in range(iterations):
        a00 = a01 = a02 = a11 = a12 = a22 = 0.0
        b0 = b1 = b2 = 0.0
        for i in range(n):
            dx = x - px[i]
            dy = y - py[i]
            d = max(math.sqrt(dx * dx + dy * dy + dz2[i]), 1e-3)
            r = t[i] - t0 - d * inv_c
            if r > late_s:
                w = late_s / r
            elif r < -early_s:
                w = early_s / -r
            else:
                w = 1.0
            jx = -dx / d * inv_c
            jy = -dy / d * inv_c
            a00 += w * jx * jx
            a01 += w * jx * jy
            a02 -= w * jx
            a11 += w * jy * jy
            a12 -= w * jy
            a22 += w
            b0 += w * jx * r
            b1 += w * jy * r
            b2 -= w * r
        normal[0, 0] = a00
        normal[0, 1] = a01
        normal[1, 0] = a01
        normal[0, 2] = a02
        normal[2, 0] = a02
        normal[1, 1] = a11
        normal[1, 2] = a12
        normal[2, 1] = a12
        normal[2, 2] = a22
        # Cramer's rule on the symmetric 3x3 system normal @ step = -b
        m00 = a11 * a22 - a12 * a12
        m01 = a01 * a22 - a12 * a02
        m02 = a01 * a12 - a11 * a02
        det = a00 * m00 - a01 * m01 + a02 * m02
        if abs(det) < 1e-300:
            break
        r0, r1, r2 = -b0, -b1, -b2
        s0 = (r0 * m00 - a01 * (r1 * a22 - a12 * r2) + a02 * (r1 * a12 - a11 * r2)) / det
        s1 = (a00 * (r1 * a22 - a12 * r2) - r0 * m01 + a02 * (a01 * r2 - r1 * a02)) / det
        s2 = (a00 * (a11 * r2 - r1 * a12) - a01 * (a01 * r2 - r1 * a02) + r0 * m02) / det
        step = math.hypot(s0, s1)
        if step > 200.0:  # a flat direction must not throw the source away
            f = 200.0 / step
            s0 *= f
            s1 *= f
            s2 *= f
        x += s0
        y += s1
        t0 += s2
        if step < 0.01:
            converged = True
            break
    return x, y, t0, normal, converged


def warm_refine() -> None:
    """Compile (or load from numba's cache) the refinement kernel on a tiny input."""
    pos = np.array([[0.0, 0.0, 0.0], [300.0, 0.0, 0.0], [0.0, 300.0, 0.0], [300.0, 300.0, 0.0]])
    t = np.array([0.5, 0.9, 0.9, 1.2])
    refine(pos, t, 343.0, 100.0, 100.0, z_m=0.0, sigma_s=0.001, late_s=0.01, early_s=0.01)
