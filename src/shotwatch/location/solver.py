"""Robust TDOA multilateration as pure functions on arrays.

Model: a pulse from sensor ``i`` at ``s_i`` arrives at ``t_i = t0 + |p - s_i| / c + e_i``, where
``e_i`` is pick noise (a few tenths of a millisecond to ~1 ms) plus, on non-line-of-sight (NLOS)
paths, a *positive* excess delay (diffraction and reflection only ever make sound late). The
unknowns are the source ``p`` (x, y or x, y, z) and the origin time ``t0``.

Method (ADR 0011):

1. **Global start** without any initial guess: a coarse-to-fine grid over the plane around the
   sensors; at each node the origin times ``o_i = t_i - d_i / c`` are scored with a truncated
   quadratic around the best candidate ``t0`` (a consensus score, so a few wild pulses cannot
   pull the start).
2. **Iteratively reweighted Gauss-Newton** with an *asymmetric* loss: early residuals keep
   full weight (nothing makes sound early), late residuals are down-weighted with a Cauchy
   weight whose scale is a few pick sigmas, so NLOS arrivals lose their pull.
3. **Uncertainty** from the weighted Jacobian at the solution: parameter covariance, the 90 %
   horizontal ellipse and the radius of the 90 % circle.
4. **Ambiguity**: with exactly ``dims + 1`` sensors two sources can fit the arrivals exactly;
   the solver then looks for the second exact fit and returns both, ordered by fit.

Everything here is deterministic numpy; nothing reads files or clocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: chi-square quantile, 2 degrees of freedom, 90 %.
CHI2_2DOF_90 = 4.605170185988092


@dataclass(frozen=True)
class SolverConfig:
    """Numerical knobs of the solver (times in seconds, distances in metres)."""

    dims: int = 2
    pick_sigma_s: float = 0.0015
    late_scale_s: float = 0.004
    early_scale_s: float = 0.02
    grid_margin_m: float = 400.0
    max_extent_m: float = 3000.0
    coarse_nodes: int = 48
    outlier_sigmas: float = 4.0
    max_iter: int = 30
    z_prior_sigma_m: float = 30.0
    model_sigma_s: float = 0.0
    model_sigma_weight: float = 4.0


@dataclass(frozen=True)
class TdoaSolution:
    """One solved source: position (local metres), origin time and the fit's diagnostics."""

    xyz_m: FloatArray
    t0_s: float
    residuals_s: FloatArray
    weights: FloatArray
    inliers: NDArray[np.bool_]
    covariance: FloatArray
    sigma_s: float
    rms_s: float
    converged: bool
    alternatives: tuple[FloatArray, ...] = field(default_factory=tuple)

    @property
    def ambiguous(self) -> bool:
        return bool(self.alternatives)


def predicted_s(p: FloatArray, pos: FloatArray, c_mps: float, dims: int) -> FloatArray:
    """Travel times from source ``p`` (x, y, z) to each sensor along the straight 3-D path.

    In 2-D only x and y are unknowns; the source height ``p[2]`` stays where the caller put it
    (the sensors' median height), so sensors on a hillside or a roof still get their true
    slant distance (Pittsburgh sensors span ~90 m of height: ignoring it costs metres)."""
    del dims  # the path is 3-D either way; dims only decides which coordinates are solved
    d = pos[:, :3] - p[:3]
    return np.sqrt(np.sum(d * d, axis=1)) / c_mps


def _grid_scores(
    gx: FloatArray,
    gy: FloatArray,
    pos: FloatArray,
    t: FloatArray,
    *,
    c: float,
    tol_s: float,
    z: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Consensus cost (lower is better) and best origin time at each grid node.

    For each node the origin times ``o_i`` are compared against each ``o_j`` as a candidate
    ``t0``; the cost is the truncated quadratic sum ``sum_i min(((o_i - o_j)/tol)^2, 1)``,
    minimised over ``j``.
    """
    dx = gx[:, None] - pos[None, :, 0]
    dy = gy[:, None] - pos[None, :, 1]
    dz2 = (pos[:, 2] - (float(np.median(pos[:, 2])) if z is None else z)) ** 2
    o = t[None, :] - np.sqrt(dx * dx + dy * dy + dz2[None, :]) / c  # (G, n)
    diff = (o[:, :, None] - o[:, None, :]) / tol_s  # (G, n_i, n_j)
    cost = np.minimum(diff * diff, 1.0).sum(axis=1)  # (G, n_j)
    j = np.argmin(cost, axis=1)
    rows = np.arange(len(gx))
    return cost[rows, j], o[rows, j]


def grid_start(
    pos: FloatArray,
    t: FloatArray,
    c: float,
    cfg: SolverConfig,
    tol_s: float,
    *,
    z: float | None = None,
) -> list[tuple[float, float, float]]:
    """Candidate (x, y, cost) starting points from a two-level grid, best first, with
    distinct basins (local minima far apart) kept so an ambiguity can be found."""
    lo = pos[:, :2].min(axis=0) - cfg.grid_margin_m
    hi = pos[:, :2].max(axis=0) + cfg.grid_margin_m
    centre = 0.5 * (lo + hi)
    half = np.minimum(0.5 * (hi - lo), cfg.max_extent_m)
    half = np.full(2, float(half.max()))
    n = cfg.coarse_nodes
    xs = np.linspace(centre[0] - half[0], centre[0] + half[0], n)
    ys = np.linspace(centre[1] - half[1], centre[1] + half[1], n)
    step = float(xs[1] - xs[0])
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    # Coarse nodes are up to step/sqrt(2) from the truth: widen the tolerance to match.
    coarse_tol = max(tol_s, step / c)
    cost, _ = _grid_scores(gx.ravel(), gy.ravel(), pos, t, c=c, tol_s=coarse_tol, z=z)
    cost2 = cost.reshape(n, n)
    # Local minima of the coarse cost surface.
    padded = np.pad(cost2, 1, constant_values=np.inf)
    neigh = np.stack(
        [
            padded[1 + di : n + 1 + di, 1 + dj : n + 1 + dj]
            for di in (-1, 0, 1)
            for dj in (-1, 0, 1)
            if (di, dj) != (0, 0)
        ]
    )
    is_min = cost2 <= neigh.min(axis=0)
    idx = np.argwhere(is_min)
    order = np.argsort(cost2[is_min], kind="stable")[:6]
    starts: list[tuple[float, float, float]] = []
    for k in order:
        i, j = idx[k]
        # Refine each basin on a finer grid of +-1.5 coarse steps.
        fx = np.linspace(xs[i] - 1.5 * step, xs[i] + 1.5 * step, 25)
        fy = np.linspace(ys[j] - 1.5 * step, ys[j] + 1.5 * step, 25)
        fgx, fgy = np.meshgrid(fx, fy, indexing="ij")
        fine_tol = max(tol_s, (fx[1] - fx[0]) / c)
        fcost, _ = _grid_scores(fgx.ravel(), fgy.ravel(), pos, t, c=c, tol_s=fine_tol, z=z)
        b = int(np.argmin(fcost))
        starts.append((float(fgx.ravel()[b]), float(fgy.ravel()[b]), float(fcost[b])))
    starts.sort(key=lambda s: s[2])
    return starts


def _irls(
    p0: FloatArray,
    pos: FloatArray,
    t: FloatArray,
    *,
    c: float,
    cfg: SolverConfig,
    z_prior: float | None,
) -> tuple[FloatArray, float, FloatArray, FloatArray, FloatArray, bool]:
    """Gauss-Newton with asymmetric robust weights. Returns (p, t0, residuals, weights,
    normal matrix, converged)."""
    dims = cfg.dims
    p = p0.astype(float).copy()
    tt = predicted_s(p, pos, c, dims)
    t0 = float(np.median(t - tt))
    sigma = cfg.pick_sigma_s
    w = np.ones(len(t))
    converged = False
    normal = np.eye(dims + 1)
    for it in range(cfg.max_iter):
        tt = predicted_s(p, pos, c, dims)
        r = t - t0 - tt
        # Robust scale: MAD of residuals, floored at the pick sigma.
        mad = float(np.median(np.abs(r - np.median(r)))) * 1.4826
        sigma = max(cfg.pick_sigma_s, min(mad, 0.01))
        late_scale = max(cfg.late_scale_s, 2.0 * sigma) if it > 1 else 5 * cfg.late_scale_s
        early_scale = max(cfg.early_scale_s, 4.0 * sigma)
        scale = np.where(r > 0, late_scale, early_scale)
        w = 1.0 / (1.0 + (r / scale) ** 2)
        d = pos[:, :3] - p[:3]
        dist = np.maximum(np.sqrt(np.sum(d * d, axis=1)), 1e-3)
        # d r / d p = (s - p)/|s - p| / c ; d r / d t0 = -1
        jac = np.empty((len(t), dims + 1))
        jac[:, :dims] = d[:, :dims] / dist[:, None] / c
        jac[:, dims] = -1.0
        sw = np.sqrt(w)
        a = jac * sw[:, None]
        b = r * sw
        if dims == 3 and z_prior is not None:
            # Weak prior pulling z towards the sensors' plane: the vertical is poorly
            # constrained by a near-planar array (TN-098 Table IV).
            prior_row = np.zeros((1, dims + 1))
            prior_row[0, 2] = sigma / cfg.z_prior_sigma_m
            a = np.vstack([a, prior_row])
            b = np.append(b, (p[2] - z_prior) * sigma / cfg.z_prior_sigma_m)
        normal = a.T @ a
        try:
            step, *_ = np.linalg.lstsq(a, -b, rcond=None)
        except np.linalg.LinAlgError:
            break
        # Limit a step to 200 m so a flat direction cannot throw the source away.
        n_step = float(np.linalg.norm(step[:dims]))
        if n_step > 200.0:
            step *= 200.0 / n_step
        p[:dims] += step[:dims]
        t0 += float(step[dims])
        if n_step < 1e-3 and abs(step[dims]) < 1e-7 and it > 3:
            converged = True
            break
    tt = predicted_s(p, pos, c, dims)
    r = t - t0 - tt
    return p, t0, r, w, normal, converged


def robust_misfit(r: FloatArray, cfg: SolverConfig) -> float:
    """Negative log-likelihood (up to a constant) of residuals ``r`` under the solver's
    asymmetric Cauchy model: late residuals at ``late_scale_s``, early at ``early_scale_s``."""
    x = np.where(r > 0, r / max(cfg.late_scale_s, 1e-6), r / max(cfg.early_scale_s, 1e-6))
    return float(np.sum(np.log1p(x * x)))


def solve_tdoa(
    pos_m: FloatArray,
    t_s: FloatArray,
    c_mps: float,
    cfg: SolverConfig | None = None,
    *,
    tol_s: float = 0.01,
    start_xy: tuple[float, float] | None = None,
    source_z_m: float | None = None,
    prefer: Callable[[FloatArray], float] | None = None,
) -> TdoaSolution:
    """Locate one source from arrival times ``t_s`` (n,) at sensors ``pos_m`` (n, 3).

    Needs ``n >= dims + 1``. Returns the best solution; when ``n == dims + 1`` and a second
    exact fit exists it is returned in ``alternatives``. ``start_xy`` (absolute metres)
    replaces the global grid start when the set is over-determined. ``source_z_m`` (absolute)
    is the source height of a 2-D solve and the centre of the height prior of a 3-D solve;
    by default the sensors' median height.

    The basins found from the grid's starts are ranked by their robust misfit (a Cauchy
    negative log-likelihood of the residuals, late and early scales apart) plus
    ``prefer(xyz)`` (absolute position; prior evidence in the same units, e.g. sensors
    that did not hear the shot): with few sensors two basins can fit about equally well,
    and only evidence beyond the arrival times tells them apart.
    """
    cfg = cfg or SolverConfig()
    pos = np.asarray(pos_m, dtype=float).reshape(-1, 3)
    t_abs = np.asarray(t_s, dtype=float).ravel()
    n = len(t_abs)
    dims = cfg.dims
    if n < dims + 1:
        raise ValueError(f"need at least {dims + 1} arrivals for {dims}-D, got {n}")
    origin = pos.mean(axis=0)
    rel = pos - origin
    t_ref = float(t_abs.min())
    t = t_abs - t_ref
    z_prior = float(np.median(rel[:, 2])) if source_z_m is None else source_z_m - origin[2]
    if start_xy is not None and n > dims + 1:
        # A trusted start (e.g. the associator's grid node): no global search needed.
        starts = [(start_xy[0] - origin[0], start_xy[1] - origin[1], 0.0)]
    else:
        starts = grid_start(rel, t, c_mps, cfg, tol_s, z=z_prior)
    results = []
    for sx, sy, _ in starts[:4]:
        p0 = np.array([sx, sy, z_prior])
        results.append(_irls(p0, rel, t, c=c_mps, cfg=cfg, z_prior=z_prior if dims == 3 else None))

    def score(res: tuple[FloatArray, float, FloatArray, FloatArray, FloatArray, bool]) -> float:
        return robust_misfit(res[2], cfg)

    if prefer is not None and len(results) > 1:
        extra = [prefer(res[0] + origin) for res in results]
        order = sorted(range(len(results)), key=lambda i: score(results[i]) + extra[i])
        results = [results[i] for i in order]
    else:
        results.sort(key=score)
    p, t0, r, w, normal, converged = results[0]
    sigma = _sigma(r, w, cfg.pick_sigma_s, n - (dims + 1))
    inliers = (r <= cfg.outlier_sigmas * max(sigma, cfg.pick_sigma_s) + 1e-9) & (
        r >= -cfg.outlier_sigmas * max(sigma, cfg.pick_sigma_s) * 3
    )
    sigma_cov = _sigma_with_prior(sigma, cfg, n - (dims + 1))
    try:
        cov = np.asarray(np.linalg.inv(normal) * sigma_cov * sigma_cov, dtype=np.float64)
    except np.linalg.LinAlgError:
        cov = np.full((dims + 1, dims + 1), np.inf)
    alternatives: list[FloatArray] = []
    if n == dims + 1:
        exact_tol = max(cfg.pick_sigma_s, 1e-4)
        if float(np.sqrt(np.mean(r * r))) <= exact_tol:
            for res in results[1:]:
                q, _, rq, *_ = res
                far = float(np.linalg.norm(q[:2] - p[:2])) > 5.0
                q_abs = q + origin
                if (
                    far
                    and float(np.sqrt(np.mean(rq * rq))) <= exact_tol
                    and all(float(np.linalg.norm(q_abs[:2] - a[:2])) > 5.0 for a in alternatives)
                ):
                    alternatives.append(q_abs)
    rms = float(np.sqrt(np.mean(r * r)))
    return TdoaSolution(
        xyz_m=p + origin,
        t0_s=t0 + t_ref,
        residuals_s=r,
        weights=w,
        inliers=inliers,
        covariance=cov,
        sigma_s=sigma,
        rms_s=rms,
        converged=converged,
        alternatives=tuple(alternatives),
    )


def _sigma(r: FloatArray, w: FloatArray, floor_s: float, dof: int) -> float:
    """A posteriori one-sigma arrival error from the weighted residuals, never below the pick
    sigma (a perfect fit of the minimum sensor count says nothing about noise)."""
    if dof <= 0:
        return floor_s
    wr = float(np.sum(w * r * r))
    est = math.sqrt(wr / max(float(np.sum(w)) - (len(r) - dof), 1e-9))
    return max(floor_s, est)


def _sigma_with_prior(sigma: float, cfg: SolverConfig, dof: int) -> float:
    """The arrival-error scale for the covariance: the fit's own estimate pooled with the
    propagation model's prior scale ``model_sigma_s`` worth ``model_sigma_weight`` residuals
    (a conjugate prior on the variance). A fit with no spare sensor (three in 2-D) says
    nothing about its error and gets the prior; twenty spare sensors mostly speak for
    themselves. Never below the fit's own estimate's floor (the pick sigma)."""
    if cfg.model_sigma_s <= 0.0:
        return sigma
    nu0 = cfg.model_sigma_weight
    k = max(dof, 0)
    var = (nu0 * cfg.model_sigma_s**2 + k * sigma * sigma) / (nu0 + k)
    return max(math.sqrt(var), cfg.pick_sigma_s)


def ellipse_90(cov_xy: FloatArray) -> tuple[float, float, float]:
    """(semi-major m, semi-minor m, azimuth of major axis deg clockwise from north) of the
    90 % horizontal confidence ellipse of a 2x2 covariance (x east, y north)."""
    vals, vecs = np.linalg.eigh(cov_xy)
    vals = np.maximum(vals, 0.0)
    major = vecs[:, 1]
    az = math.degrees(math.atan2(major[0], major[1])) % 180.0
    return (
        math.sqrt(CHI2_2DOF_90 * vals[1]),
        math.sqrt(CHI2_2DOF_90 * vals[0]),
        az,
    )


def radius_90(cov_xy: FloatArray) -> float:
    """Radius of the circle centred on the estimate that holds 90 % of a 2-D Gaussian with
    covariance ``cov_xy`` (exact integral over angle, bisection on the radius)."""
    vals = np.maximum(np.linalg.eigvalsh(cov_xy), 1e-12)
    l1, l2 = float(vals[1]), float(vals[0])
    theta = np.linspace(0.0, 2 * math.pi, 720, endpoint=False)
    a = np.cos(theta) ** 2 / l1 + np.sin(theta) ** 2 / l2
    norm = 1.0 / (2 * math.pi * math.sqrt(l1 * l2))

    def prob(rad: float) -> float:
        return float(norm * np.mean((1.0 - np.exp(-0.5 * rad * rad * a)) / a) * 2 * math.pi)

    lo, hi = 0.0, 5.0 * math.sqrt(l1) + 1e-9
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if prob(mid) < 0.9:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
