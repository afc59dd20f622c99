"""Compiled inner loops of the associator (ADR 0016).

At city load the associator handles tens of thousands of pulses a second on one core; each
pulse that fits no open shot is tried as the latest arrival of a new one, which means solving
every triple it makes with its neighbours' pulses and counting, for every solution, the
sensors that agree. Written with numpy that is ~50 array calls per pulse, each costing more
in call overhead than in arithmetic. Here the same work is plain loops compiled by numba.

The functions are pure (arrays in, arrays out) and mirror the numpy reference in
:mod:`shotwatch.association.geometry`, which the tests hold them to.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

#: Hypothesis states in ``PulseStore.owner`` that may still join a new hypothesis.
_FREE = -1
_CLAIMED = -4

#: Sources kept by the search, best first.
TOP = 4
#: Partner pulses (nearest sensors first) that the triples are made of.
PAIR_PARTNERS = 16


@njit(cache=True)
def _poisson_floor(mu: float, trials: int, alpha: float, n_max: int) -> int:
    """Smallest k with trials * P(Poisson(mu) >= k) <= alpha (capped at n_max + 1)."""
    k = 0
    tail = 1.0
    term = math.exp(-mu)
    while trials * tail > alpha and k <= n_max:
        tail = max(0.0, tail - term)
        k += 1
        term *= mu / k
    return k


@njit(cache=True)
def nucleation_search(  # noqa: PLR0917 (compiled: numba passes arguments by position)
    t_anchor: float,
    s_anchor: int,
    sx: NDArray[np.float64],
    sy: NDArray[np.float64],
    rank: NDArray[np.int16],
    dist: NDArray[np.float32],
    n_nb: int,
    ts: NDArray[np.float64],
    ss: NDArray[np.int64],
    owner: NDArray[np.int64],
    gap: NDArray[np.float64],
    mode: int,
    onset_gap_s: float,
    c: float,
    tol_s: float,
    rel: float,
    reach_m: float,
    rate_span_s: float,
    alpha: float,
    max_partners: int,
) -> tuple[
    NDArray[np.float64], NDArray[np.int64], NDArray[np.int64], int, NDArray[np.int64], int, int
]:
    """Best sources for a new shot whose latest arrival is the anchor pulse.

    ``ts``/``ss``/``owner``/``gap`` are the buffer rows before the anchor (time order);
    ``rank``/``dist`` the anchor sensor's neighbour ranks (-1: not a neighbour, ``n_nb`` of
    them are neighbours) and distances. A pulse agrees with a source when its origin time is
    within ``tol_s`` plus ``rel`` times the sound's travel time between its sensor and the
    anchor's: what wind (w) or a speed-of-sound error (dc) changes between two paths from
    one source is at most (|w| + |dc|) / c of that, wherever the source is.

    Returns ``(sources, support, members, n_partners, need, n_inside, onset_only)``: up to
    :data:`TOP` sources
    (rows: x, y relative to the anchor's sensor, origin time, soft score), their agreeing
    sensor counts (anchor included), for each source the buffer row of each neighbour's
    earliest agreeing pulse (-1 where none; columns follow ``partner order``), the number of
    partner pulses used, and ``need``: per source, the agreeing sensors it must reach before
    chance is an unlikely explanation (ADR 0116: after quiet, without its own pulses in the
    rates); ``n_inside`` the usable partner
    pulses that are not burst starts; ``onset_only`` (0/1) whether burst starts alone were
    searched. ``mode``: 0 every partner pulse,
    1 burst starts only (a pulse after ``onset_gap_s`` of quiet on its sensor), 2 burst
    starts only when the partner pulses inside bursts outnumber them (rapid fire), else all.
    """
    n_rows = ts.shape[0]
    # neighbour pulse counts for the chance floor, and the usable partner pulses: all of
    # them and the burst starts among them
    counts = np.zeros(max(n_nb, 1))
    counts_on = np.zeros(max(n_nb, 1))
    spans = np.ones(max(n_nb, 1))
    halfw = np.full(max(n_nb, 1), tol_s)
    cand = np.empty(n_rows, dtype=np.int64)
    cand_on = np.empty(n_rows, dtype=np.int64)
    n_c = 0
    n_on = 0
    n_inside = 0
    inv_c = 1.0 / c
    for i in range(n_rows):
        s = ss[i]
        r = rank[s]
        if r < 0 or s == s_anchor:
            continue
        onset = gap[i] >= onset_gap_s
        dt = t_anchor - ts[i]
        reach = dist[s] * inv_c * (1.0 + rel) + tol_s
        span = max(reach, rate_span_s)
        spans[r] = span
        halfw[r] = tol_s + rel * dist[s] * inv_c
        if dt <= span:
            counts[r] += 1.0
            if onset:
                counts_on[r] += 1.0
        if dt > reach:
            continue
        if owner[i] != _FREE and owner[i] != _CLAIMED:
            continue
        cand[n_c] = i
        n_c += 1
        if onset:
            cand_on[n_on] = i
            n_on += 1
        else:
            n_inside += 1
    spans_n = spans[: max(n_nb, 1)]
    halfw_n = halfw[: max(n_nb, 1)]
    if mode == 1 or mode == 3:  # noqa: PLR1714 (numba compiles plain comparisons)
        res = _search(
            t_anchor,
            s_anchor,
            sx,
            sy,
            rank,
            n_nb,
            ts,
            ss,
            gap,
            mode == 3,
            onset_gap_s,
            cand_on,
            n_on,
            counts_on,
            spans_n,
            halfw_n,
            c,
            tol_s,
            rel,
            reach_m,
            alpha,
            max_partners,
        )
        if mode == 1 or n_inside == 0 or res[1][0] >= res[4][0]:
            return res[0], res[1], res[2], res[3], res[4], n_inside, 1
    res = _search(
        t_anchor,
        s_anchor,
        sx,
        sy,
        rank,
        n_nb,
        ts,
        ss,
        gap,
        mode == 3,
        onset_gap_s,
        cand,
        n_c,
        counts,
        spans_n,
        halfw_n,
        c,
        tol_s,
        rel,
        reach_m,
        alpha,
        max_partners,
    )
    return res[0], res[1], res[2], res[3], res[4], n_inside, 0


@njit(cache=True)
def _search(  # noqa: PLR0917 (compiled: numba passes arguments by position)
    t_anchor: float,
    s_anchor: int,
    sx: NDArray[np.float64],
    sy: NDArray[np.float64],
    rank: NDArray[np.int16],
    n_nb: int,
    ts: NDArray[np.float64],
    ss: NDArray[np.int64],
    gap: NDArray[np.float64],
    anchor_onset: bool,
    onset_gap_s: float,
    cand: NDArray[np.int64],
    n_c: int,
    counts: NDArray[np.float64],
    spans: NDArray[np.float64],
    halfw: NDArray[np.float64],
    c: float,
    tol_s: float,
    rel: float,
    reach_m: float,
    alpha: float,
    max_partners: int,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64], int, NDArray[np.int64]]:
    """The triple search over the chosen partner rows ``cand[:n_c]`` (see
    :func:`nucleation_search`)."""
    inv_c = 1.0 / c
    sources = np.zeros((TOP, 4))
    support = np.zeros(TOP, dtype=np.int64)
    members = np.full((TOP, max(n_nb, 1)), -1, dtype=np.int64)
    if n_c < 2:
        return sources, support, members, n_c, np.full(TOP, 1 << 30, dtype=np.int64)
    # nearest sensors first, earliest first within a sensor; at most max_partners
    key = np.empty(n_c)
    for k in range(n_c):
        i = cand[k]
        key[k] = rank[ss[i]] * 1e6 + (ts[i] - t_anchor + 1e5)
    order = np.argsort(key)
    n = min(n_c, max_partners)
    rows = np.empty(n, dtype=np.int64)
    grp = np.empty(n, dtype=np.int64)
    rx = np.empty(n)
    ry = np.empty(n)
    tt = np.empty(n)
    width = np.empty(n)
    ax = sx[s_anchor]
    ay = sy[s_anchor]
    for k in range(n):
        i = cand[order[k]]
        rows[k] = i
        grp[k] = rank[ss[i]]
        rx[k] = sx[ss[i]] - ax
        ry[k] = sy[ss[i]] - ay
        tt[k] = ts[i]
        width[k] = tol_s + rel * math.hypot(rx[k], ry[k]) * inv_c
    best_dev = np.empty(n_nb)
    best_row = np.empty(n_nb, dtype=np.int64)
    trials = 0
    # triples are formed from the nearest ``PAIR_PARTNERS`` partner pulses (a real source's
    # earlier arrivals are at the sensors nearest it, so two of them are among these);
    # support is counted over all of them
    n_pair = min(n, PAIR_PARTNERS)
    for i in range(n_pair):
        for j in range(i + 1, n_pair):
            if grp[i] == grp[j]:
                continue
            # two pulses of one source differ by no more than their sensors' distance
            apart = math.hypot(rx[i] - rx[j], ry[i] - ry[j])
            if abs(tt[i] - tt[j]) > apart * inv_c * (1.0 + rel) + 2 * tol_s:
                continue
            bx = rx[i]
            by = ry[i]
            db = (tt[i] - t_anchor) * c
            cx = rx[j]
            cy = ry[j]
            dc = (tt[j] - t_anchor) * c
            det = bx * cy - by * cx
            scale = math.hypot(bx, by) * math.hypot(cx, cy)
            if abs(det) <= 1e-6 * max(scale, 1e-12):
                continue
            ub = 0.5 * (bx * bx + by * by - db * db)
            uc = 0.5 * (cx * cx + cy * cy - dc * dc)
            px = (cy * ub - by * uc) / det
            py = (bx * uc - cx * ub) / det
            qx = (cy * db - by * dc) / det
            qy = (bx * dc - cx * db) / det
            qa = qx * qx + qy * qy - 1.0
            qb = -2.0 * (px * qx + py * qy)
            qc = px * px + py * py
            r_a = -1.0
            r_b = -1.0
            if abs(qa) < 1e-9:
                if qb != 0.0:
                    r_a = -qc / qb
            else:
                disc = math.sqrt(max(qb * qb - 4.0 * qa * qc, 0.0))
                r_a = (-qb + disc) / (2.0 * qa)
                r_b = (-qb - disc) / (2.0 * qa)
                if abs(r_a - r_b) < 1e-6:
                    r_b = -1.0  # a double root: one source
            for m in range(2):
                ra = r_a if m == 0 else r_b
                if not (ra >= 0.0 and ra <= reach_m):
                    continue
                trials += 1
                x = px - ra * qx
                y = py - ra * qy
                o = t_anchor - ra * inv_c
                for g in range(n_nb):
                    best_dev[g] = 1e9
                    best_row[g] = -1
                for k in range(n):
                    d = math.sqrt((x - rx[k]) ** 2 + (y - ry[k]) ** 2)
                    # in units of what the picks and the model may be off
                    dev = abs(tt[k] - d * inv_c - o) / width[k]
                    g = grp[k]
                    # the earliest agreeing pulse of a sensor is its member; the best
                    # agreement its score
                    if dev <= 1.0 and best_row[g] < 0:
                        best_row[g] = k
                    best_dev[g] = min(best_dev[g], dev)
                sup = 1
                soft = 1.0
                for g in range(n_nb):
                    if best_dev[g] <= 1.0:
                        sup += 1
                        soft += math.exp(-2.0 * best_dev[g] ** 2)
                # keep the TOP best by (support, soft)
                pos = TOP
                while pos > 0 and (
                    sup > support[pos - 1]
                    or (sup == support[pos - 1] and soft > sources[pos - 1, 3])
                ):
                    pos -= 1
                if pos < TOP:
                    for q in range(TOP - 1, pos, -1):
                        support[q] = support[q - 1]
                        sources[q, :] = sources[q - 1, :]
                        members[q, :] = members[q - 1, :]
                    support[pos] = sup
                    sources[pos, 0] = x
                    sources[pos, 1] = y
                    sources[pos, 2] = o
                    sources[pos, 3] = soft
                    for g in range(n_nb):
                        members[pos, g] = rows[best_row[g]] if best_row[g] >= 0 else -1
    # the chance floor: how many neighbours could agree with a source by chance, from their
    # pulse rates. A source whose arrivals all come after quiet on their sensors (no echo or
    # burst among them) is tested without its own pulses in the rate: in a quiet stretch of
    # a network they alone made it, and asked a shot four sensors heard for a fifth
    p_g = np.zeros(max(n_nb, 1))
    p_less = np.zeros(max(n_nb, 1))  # the same without one pulse
    p_sum = 0.0
    for g in range(n_nb):
        if counts[g] > 0:
            p_g[g] = 1.0 - math.exp(-counts[g] / spans[g] * 2.0 * halfw[g])
            p_less[g] = 1.0 - math.exp(-(counts[g] - 1.0) / spans[g] * 2.0 * halfw[g])
            p_sum += p_g[g]
    need_all = 3 + _poisson_floor(p_sum, max(trials, 1), alpha, n_nb)
    need = np.full(TOP, need_all, dtype=np.int64)
    if anchor_onset:
        for q in range(TOP):
            if support[q] == 0:
                break
            p_q = p_sum
            quiet = True
            for g in range(n_nb):
                row = members[q, g]
                if row >= 0:
                    if gap[row] < onset_gap_s:
                        quiet = False
                        break
                    p_q -= p_g[g] - p_less[g]
            if quiet:
                need[q] = 3 + _poisson_floor(max(p_q, 0.0), max(trials, 1), alpha, n_nb)
    return sources, support, members, n, need


@njit(cache=True)
def count_within(
    sx: NDArray[np.float64], sy: NDArray[np.float64], x: float, y: float, r: float
) -> int:
    """Sensors within ``r`` of ``(x, y)``."""
    n = 0
    r2 = r * r
    for i in range(sx.shape[0]):
        if (sx[i] - x) ** 2 + (sy[i] - y) ** 2 <= r2:
            n += 1
    return n


@njit(cache=True)
def max_distance(
    sx: NDArray[np.float64], sy: NDArray[np.float64], idx: NDArray[np.int64], x: float, y: float
) -> float:
    """Farthest of the sensors ``idx`` from ``(x, y)``."""
    m = 0.0
    for i in idx:
        m = max(m, math.hypot(sx[i] - x, sy[i] - y))
    return m


@njit(cache=True)
def attach_candidates(  # noqa: PLR0917 (compiled: numba passes arguments by position)
    x: float,
    y: float,
    z: float,
    t: float,
    hx: NDArray[np.float64],
    hy: NDArray[np.float64],
    hz: NDArray[np.float64],
    ht0: NDArray[np.float64],
    hslack: NDArray[np.float64],
    hlive: NDArray[np.bool_],
    c: float,
    early_s: float,
    late_s: float,
    rel: float,
    trial_s: float,
    reach_m: float,
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Hypothesis slots a pulse at ``(x, y, z)``, time ``t``, might join: those whose
    predicted arrival is within ``trial_s`` (plus their slack). Ordered: strict fits (inside
    ``[-early_s, late_s]`` plus slack, plus ``rel`` of the travel time: what the propagation
    model may be off on that path) first, each group by residual relative to its window."""
    n = hx.shape[0]
    slots = np.empty(n, dtype=np.int64)
    key = np.empty(n)
    strict = np.empty(n, dtype=np.bool_)
    m = 0
    inv_c = 1.0 / c
    for k in range(n):
        if not hlive[k]:
            continue
        d = math.sqrt((hx[k] - x) ** 2 + (hy[k] - y) ** 2 + (hz[k] - z) ** 2)
        if d > reach_m:
            continue
        r = t - ht0[k] - d * inv_c
        sl = hslack[k] + rel * d * inv_c
        if abs(r) > trial_s + sl:
            continue
        ok = -early_s - sl <= r <= late_s + sl
        width = (late_s if r > 0 else early_s) + sl
        slots[m] = k
        strict[m] = ok
        key[m] = abs(r) / max(width, 1e-9) + (0.0 if ok else 1e6)
        m += 1
    order = np.argsort(key[:m])
    return slots[:m][order], strict[:m][order]


@functools.cache
def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel once, on tiny inputs, so that the
    first pulse of a live stream does not pay for it."""
    sx = np.array([0.0, 300.0, 0.0, 300.0])
    sy = np.array([0.0, 0.0, 300.0, 300.0])
    rank = np.array([-1, 0, 1, 2], dtype=np.int16)
    dist = np.array([0.0, 300.0, 300.0, 424.0], dtype=np.float32)
    ts = np.array([0.1, 0.2, 0.3])
    ss = np.array([1, 2, 3], dtype=np.int64)
    owner = np.full(3, _FREE, dtype=np.int64)
    gap = np.full(3, 10.0)
    nucleation_search(
        0.5,
        0,
        sx,
        sy,
        rank,
        dist,
        3,
        ts,
        ss,
        owner,
        gap,
        0,
        0.25,
        343.0,
        0.008,
        0.005,
        2500.0,
        1.0,
        0.3,
        24,
    )
    count_within(sx, sy, 0.0, 0.0, 100.0)
    max_distance(sx, sy, np.array([0, 1], dtype=np.int64), 0.0, 0.0)
    hx = np.zeros(2)
    attach_candidates(
        0.0,
        0.0,
        0.0,
        1.0,
        hx,
        hx,
        hx,
        hx,
        hx,
        np.ones(2, dtype=np.bool_),
        343.0,
        0.015,
        0.03,
        0.005,
        0.15,
        2500.0,
    )
