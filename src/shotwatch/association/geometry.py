"""Closed-form geometry of time differences, as pure vectorised functions.

Three sensors and their arrival times fix a source in the plane up to two choices: with the
first sensor at the origin and range differences ``d_i = c (t_i - t_0)`` to the other two,
the source ``x`` satisfies ``s_i . x = (|s_i|^2 - d_i^2) / 2 - r d_i`` for both partners,
where ``r = |x|`` is its range to the first sensor. That is a 2x2 linear system in ``x``
for a given ``r``, so ``x = p + r q``, and ``|x| = r`` leaves a quadratic in ``r`` with at
most two non-negative roots. This is the standard spherical-intersection solution; every
function here works on whole arrays of triples at once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def triple_sources(
    b: tuple[FloatArray, FloatArray, FloatArray],
    c: tuple[FloatArray, FloatArray, FloatArray],
    *,
    max_range_m: float,
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.intp]]:
    """Sources of triples (anchor at the origin, partners ``b`` and ``c``).

    ``b`` and ``c`` are each ``(x, y, d)``: the partners' positions relative to the anchor
    and their range differences (metres; positive when the partner heard it later).
    Returns ``(x, y, r, k)``: every admissible source (at most two per triple), its range
    ``r`` to the anchor (``0 <= r <= max_range_m``) and ``k``, the index of its triple.
    Degenerate triples (partners in line with the anchor) give none. This is the plain
    reference for the compiled search in :mod:`shotwatch.association.kernels`.
    """
    bx, by, db = b
    cx, cy, dc = c
    det = bx * cy - by * cx
    scale = np.hypot(bx, by) * np.hypot(cx, cy)
    good = np.abs(det) > 1e-6 * np.maximum(scale, 1e-12)
    det = np.where(good, det, 1.0)
    ub = 0.5 * (bx * bx + by * by - db * db)
    uc = 0.5 * (cx * cx + cy * cy - dc * dc)
    # x = p - r q  solves  s_i . x = u_i - r d_i  for both partners
    px = (cy * ub - by * uc) / det
    py = (bx * uc - cx * ub) / det
    qx = (cy * db - by * dc) / det
    qy = (bx * dc - cx * db) / det
    qa = qx * qx + qy * qy - 1.0
    qb = -2.0 * (px * qx + py * qy)
    qc = px * px + py * py
    disc = qb * qb - 4.0 * qa * qc
    # Timing noise can pull two nearly tangent hyperbolae apart: take the closest approach.
    root = np.sqrt(np.maximum(disc, 0.0))
    linear = np.abs(qa) < 1e-9
    a_safe = np.where(linear, 1.0, qa)
    b_safe = np.where(qb == 0.0, 1.0, qb)
    r1 = np.where(linear, -qc / b_safe, (-qb + root) / (2.0 * a_safe))
    r2 = np.where(linear, np.inf, (-qb - root) / (2.0 * a_safe))
    r = np.concatenate((r1, r2))
    k = np.concatenate((np.arange(len(bx)), np.arange(len(bx))))
    ok = np.concatenate((good, good)) & np.isfinite(r) & (r >= 0.0) & (r <= max_range_m)
    # A double root (tangent case) would be listed twice: keep one.
    dup = np.concatenate((np.zeros(len(bx), bool), np.abs(r1 - r2) < 1e-6))
    ok &= ~dup
    k = k[ok]
    r = r[ok]
    x = px[k] - r * qx[k]
    y = py[k] - r * qy[k]
    return x, y, r, k.astype(np.intp)
