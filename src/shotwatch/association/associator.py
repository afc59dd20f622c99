"""Streaming association: pulses, one at a time in arrival order -> located shots.

In the spirit of SeisComP's scautoloc (a plain class fed one pick at a time) and of GaMMA's
travel-time consistency, without any ground truth:

* Pulses wait in a time-sorted ring buffer (numpy arrays, so every search is vectorised).
* The oldest unprocessed pulse becomes an **anchor** once every pulse that could belong to the
  same shot has had time to arrive (the farthest sensor in reach, divided by ``c``).
* **Candidates** are pulses of other sensors within reach whose time difference to the anchor
  is physically possible: ``|dt| <= distance / c + tolerance``. Fewer than ``min_sensors``
  distinct sensors ends the anchor at once (the fast path that keeps unrelated impulses cheap).
* A **coarse-to-fine grid** around the anchor's sensor counts, at each node, the distinct
  sensors whose origin time ``t - d / c`` agrees with the anchor's; the node with the largest
  consistent set wins (ties: the tighter set). One pulse per sensor is kept, the earliest
  consistent one (echoes and reverberation arrive later).
* The set is located robustly (:func:`shotwatch.location.locate`), membership is re-checked
  against the located source, and the shot is final. Its pulses are consumed, so later rounds
  and echoes are left to later anchors.
* A set heard only through pulses that sit in the reverberation tail of a shot just located
  at the same sensors must either land near that shot (another round from the same gun) or
  carry clearly more sensors than the minimum (ADR 0012): echoes of one shot are mutually
  consistent only by chance, and chance agreement needs few sensors.

The clock is the data: "now" is the latest arrival fed, so replay and live are one path.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from shotwatch.core.errors import InputError
from shotwatch.core.model import Pulse, Sensor, ShotLocation
from shotwatch.core.settings import Settings
from shotwatch.location.locate import locate

_FREE = 0
_USED = 1
_DONE = 2  # processed as an anchor without forming a shot
# The gate's silence check looks at this many times ``gate_neighbours`` nearest sensors: a
# source heard first at A can lie some way off, and its reporting disk then reaches further.
_SILENCE_NEIGHBOURS = 4


@dataclass
class AssociatorStats:
    """Counters so that nothing is dropped silently."""

    pulses: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    anchors: int = 0
    anchors_fast_rejected: int = 0
    anchors_gate_rejected: int = 0
    grid_searches: int = 0
    shots: int = 0
    rejected_sets: int = 0
    unassociated: int = 0
    split_duplicates: int = 0
    anchor_misfits: int = 0
    echo_prechecked: int = 0
    seed_rejected: int = 0


@dataclass(frozen=True)
class _Probe:
    """A candidate set at its grid node, before location (for the lenient echo check)."""

    x_m: float
    y_m: float
    t0_s: float
    pulse_ids: tuple[str, ...]
    outliers: tuple[str, ...]
    uncertainty_m: float


_PROBE_U_M = 30.0  # position error assumed for a grid node (3 x this = 90 m counts as near)


@dataclass(frozen=True)
class _Recent:
    """A shot just located: where, when, and each sensor's arrival (for the echo rule)."""

    x_m: float
    y_m: float
    t0_s: float
    arrivals: dict[str, float]
    levels_db: dict[str, float]


class Associator:
    """Feed pulses in arrival order; get shots back as they become final."""

    def __init__(
        self,
        settings: Settings | None = None,
        c_mps: float = 343.0,
        sensors: Iterable[Sensor] | None = None,
        *,
        dims: int | None = None,
    ) -> None:
        self.settings = settings or Settings()
        a = self.settings.association
        self.c = float(c_mps)
        if not 250.0 <= self.c <= 400.0:
            raise InputError("associator", "c_mps", f"must be 250..400 m/s, got {c_mps}")
        self.dims = dims or self.settings.location.dims
        # 3 sensors suffice in 3-D too: locate() then fixes the height (height_min_sensors).
        self.min_sensors = max(a.min_sensors, 3)
        self.reach_m = a.max_station_distance_m
        self.tol_s = a.pick_tolerance_s
        self.late_s = a.late_tolerance_s
        self.coarse_m = a.coarse_cell_m
        self.echo_tail_s = a.echo_tail_s
        self.min_heard_fraction = a.min_heard_fraction
        self.significance_z = a.significance_z
        self.round_level_db = a.round_level_match_db
        self.max_tries = 1
        self.silence_window_s = a.silence_window_s
        self.same_shot_s = 0.03
        self.window_s = a.window_s
        self.gate_k = a.gate_neighbours if self.dims == 2 else 0
        self.gate_cap = a.gate_max_partners
        self.batch_s = a.batch_s
        self.stats = AssociatorStats()
        self.unassociated_ids: deque[str] = deque(maxlen=10000)
        # Sensors: serial -> index; positions in growable arrays.
        self._sidx: dict[str, int] = {}
        self._sx = np.zeros(0)
        self._sy = np.zeros(0)
        self._sz = np.zeros(0)
        self._sensor_objs: list[Sensor] = []
        self._reach_wait: dict[int, float] = {}
        self._nb_tab: np.ndarray | None = None
        self._nbd_tab: np.ndarray | None = None
        self._nb_lists: list[tuple[list[int], list[float]]] = []
        self._tree: cKDTree = cKDTree(np.zeros((1, 2)))
        self._times: dict[int, list[float]] = {}  # per sensor: its pulse times, sorted
        for s in sensors or ():
            self._add_sensor(s.serial, s.x_m, s.y_m, s.z_m, s)
        # Pulse ring buffer (arrays grow by doubling; a head index expires old pulses).
        cap = 1024
        self._t = np.zeros(cap)
        self._s = np.zeros(cap, dtype=np.int64)
        self._state = np.zeros(cap, dtype=np.int8)
        self._pulses: list[Pulse | None] = [None] * cap
        self._n = 0
        self._head = 0  # first pulse still in the buffer
        self._next_anchor = 0  # first pulse not yet processed as an anchor
        self._lim = 0  # pulses at or after this index are later than the anchor's decision time
        self._now = -math.inf
        self._recent: deque[_Recent] = deque()
        self._last_by_sensor: dict[tuple[int, float], str] = {}
        self._pulse_by_id: dict[str, Pulse] = {}
        if self._sidx:  # a known network: build the per-sensor tables now, not mid-stream
            for si in range(len(self._sidx)):
                self._wait_s(si)
            if self.gate_k:
                self._neighbour_table()

    # ------------------------------------------------------------------ sensors
    def _add_sensor(
        self, serial: str, x: float, y: float, z: float, obj: Sensor | None = None
    ) -> int:
        i = self._sidx.get(serial)
        if i is not None:
            return i
        i = len(self._sidx)
        self._sidx[serial] = i
        self._sx = np.append(self._sx, x)
        self._sy = np.append(self._sy, y)
        self._sz = np.append(self._sz, z)
        self._sensor_objs.append(obj or Sensor(serial, x, y, z))
        self._reach_wait.clear()
        self._nb_tab = None
        return i

    def _wait_s(self, si: int) -> float:
        """How long after a pulse on sensor ``si`` every possible partner has arrived."""
        w = self._reach_wait.get(si)
        if w is None:
            d = np.hypot(self._sx - self._sx[si], self._sy - self._sy[si])
            near = d[d <= 2 * self.reach_m]
            w = float(near.max()) / self.c + self.tol_s + self.late_s if len(near) else 0.0
            w = min(w, self.window_s)
            self._reach_wait[si] = w
        return w

    # ------------------------------------------------------------------ feeding
    def feed(self, pulse: Pulse) -> list[ShotLocation]:
        """Add one pulse; return the shots that became final."""
        self.stats.pulses += 1
        si = self._add_sensor(pulse.sensor, pulse.x_m, pulse.y_m, pulse.z_m)
        key = (si, round(pulse.t_s, 6))
        if key in self._last_by_sensor:
            self.stats.duplicates += 1
            return []
        self._last_by_sensor[key] = pulse.pulse_id
        self._append(pulse, si)
        self._now = max(self._now, pulse.t_s)
        return self._process(self._now, lag=self.batch_s)

    def flush(self, until_s: float | None = None) -> list[ShotLocation]:
        """Process every anchor that is due by ``until_s`` (default: all of them)."""
        now = math.inf if until_s is None else float(until_s)
        shots = self._process(now)
        if until_s is None:
            self._recent.clear()
        return shots

    def _append(self, pulse: Pulse, si: int) -> None:
        if self._n == len(self._t):
            self._compact_or_grow()
        n = self._n
        if n > self._head and pulse.t_s < self._t[n - 1]:
            # Out of arrival order: insert in place (rare; keeps the buffer sorted).
            self.stats.out_of_order += 1
            pos = int(np.searchsorted(self._t[self._head : n], pulse.t_s, side="right"))
            pos += self._head
            if pos < self._next_anchor:
                # Later than its place among the anchors already decided: it goes in time
                # order (every search relies on it) as a partner for anchors still to come,
                # never an anchor itself; unused, it is counted when it expires.
                self._next_anchor += 1
            self._t[pos + 1 : n + 1] = self._t[pos:n].copy()
            self._s[pos + 1 : n + 1] = self._s[pos:n].copy()
            self._state[pos + 1 : n + 1] = self._state[pos:n].copy()
            self._pulses[pos + 1 : n + 1] = self._pulses[pos:n]
            n = pos
            self._n += 1
        else:
            self._n += 1
        self._t[n] = pulse.t_s
        self._s[n] = si
        self._state[n] = _FREE
        self._pulses[n] = pulse
        self._pulse_by_id[pulse.pulse_id] = pulse
        lst = self._times.setdefault(si, [])
        if lst and pulse.t_s < lst[-1]:
            insort(lst, pulse.t_s)
        else:
            lst.append(pulse.t_s)
        if len(lst) > 64 and lst[0] < pulse.t_s - 4 * self.window_s:
            del lst[: bisect_left(lst, pulse.t_s - 4 * self.window_s)]

    def _compact_or_grow(self) -> None:
        h = self._head
        live = self._n - h
        cap = len(self._t)
        if live * 2 > cap:
            cap *= 2
        t = np.zeros(cap)
        s = np.zeros(cap, dtype=np.int64)
        st = np.zeros(cap, dtype=np.int8)
        t[:live] = self._t[h : self._n]
        s[:live] = self._s[h : self._n]
        st[:live] = self._state[h : self._n]
        pulses: list[Pulse | None] = [None] * cap
        pulses[:live] = self._pulses[h : self._n]
        self._t, self._s, self._state, self._pulses = t, s, st, pulses
        self._n = live
        self._next_anchor -= h
        self._head = 0

    # ------------------------------------------------------------------ processing
    def _process(self, now: float, lag: float = 0.0) -> list[ShotLocation]:
        """Process every anchor due by ``now``. With ``lag`` (feed()), start only once the
        oldest due anchor is ``lag`` overdue, so that anchors are handled in batches."""
        out: list[ShotLocation] = []
        started = lag <= 0.0
        while self._next_anchor < self._n:
            batch: list[int] = []
            lims: list[int] = []
            spent: list[int] = []
            j = self._next_anchor
            h = self._head
            while j < self._n and len(batch) < 256:
                if self._state[j] != _FREE:
                    j += 1
                    continue
                due = float(self._t[j]) + self._wait_s(int(self._s[j]))
                if due > now or (not started and due > now - lag):
                    break
                started = True
                self.stats.anchors += 1
                # Decide only on pulses up to the anchor's due time: the same shots come out
                # however the stream is cut into feed()/flush(until_s) calls.
                lim = h + int(np.searchsorted(self._t[h : self._n], due, "right"))
                if not self.gate_k:
                    self._lim = lim
                    shot = self._nucleate(j, now, None)
                    if shot is not None:
                        out.append(shot)
                elif self._precheck(j, due):
                    batch.append(j)
                    lims.append(lim)
                else:
                    self.stats.anchors_fast_rejected += 1
                    spent.append(j)
                j += 1
            if batch:
                out.extend(self._run_batch(batch, lims, now))
            for k in spent:  # after the batch: earlier anchors may still pair with them
                if self._state[k] == _FREE:
                    self._state[k] = _DONE
            self._next_anchor = j
            if not batch and not spent:
                break
        self._expire()
        return out

    def _run_batch(self, batch: list[int], lims: list[int], now: float) -> list[ShotLocation]:
        """Gate a batch of anchors together, then search the survivors one by one. A shot
        consumes pulses, so the anchors after it are gated again (exactly as if alone)."""
        out: list[ShotLocation] = []
        rest = list(zip(batch, lims, strict=True))
        while rest:
            seeds = self._gate_batch([i for i, _ in rest], [lim for _, lim in rest])
            formed = -1
            for pos, ((i, lim), seed) in enumerate(zip(rest, seeds, strict=True)):
                if self._state[i] != _FREE:
                    continue
                if seed is None:
                    self.stats.anchors_gate_rejected += 1
                    self._state[i] = _DONE
                    continue
                self._lim = lim
                shot = self._nucleate(i, now, [seed])
                if shot is not None:
                    out.append(shot)
                    formed = pos
                    break
            if formed < 0:
                break
            rest = rest[formed + 1 :]
        return out

    def _expire(self) -> None:
        """Forget pulses no future anchor can pair with (older than 2 reach / c)."""
        if self._next_anchor >= self._n:
            horizon = self._now - self.window_s
        else:
            horizon = self._t[self._next_anchor] - 2 * self.reach_m / self.c - self.late_s
        while self._head < self._next_anchor and self._t[self._head] < horizon:
            if self._state[self._head] != _USED:  # given up, or arrived after its turn
                p = self._pulses[self._head]
                self.stats.unassociated += 1
                if p is not None:
                    self.unassociated_ids.append(p.pulse_id)
            old_p = self._pulses[self._head]
            if old_p is not None:
                self._pulse_by_id.pop(old_p.pulse_id, None)
            self._pulses[self._head] = None
            self._head += 1
        while self._recent and self._recent[0].t0_s < horizon - self.echo_tail_s:
            self._recent.popleft()
        if len(self._last_by_sensor) > 4 * max(self._n - self._head, 256):
            cut = horizon
            self._last_by_sensor = {k: v for k, v in self._last_by_sensor.items() if k[1] >= cut}

    def _gate_batch(self, anchors: list[int], lims: list[int]) -> list[tuple[float, float] | None]:
        """Cheap necessary evidence for shots anchored at ``anchors`` (buffer indices, in
        order; ``lims`` bound each one's pulses by its decision time), among nearest sensors.

        A source heard first at the anchor's sensor A is also heard by sensors near A, and the
        sensors between them answer (the silence rule). So: take the free pulses of A's
        ``gate_k`` nearest sensors whose time difference to the anchor is possible (at most
        ``gate_cap``, nearest sensors first), solve every anchor + two-partner triple in closed
        form (2-D TDOA, two hyperbolae: at most two sources), pick the source the most of these
        sensors agree with (ties: the tighter fit), and keep it if at least ``min_sensors``
        agree and it passes the silence rule among these sensors. Returns per anchor that
        source (absolute x, y) or ``None``.

        Every anchor of the batch is handled by the same few array operations (numpy's cost is
        per call, not per element, at these sizes). Each anchor sees exactly what it would see
        alone: partners come after it in the buffer (earlier anchors are spent by then) and
        before its own decision time.
        """
        nb_all = len(anchors)
        out: list[tuple[float, float] | None] = [None] * nb_all
        tab, dtab = self._neighbour_table()
        k = tab.shape[1]
        kp = min(self.gate_k, k)  # partners come from the nearest kp; silence uses all k
        c, tol, late, sw = self.c, self.tol_s, self.late_s, self.silence_window_s
        anc = np.asarray(anchors, dtype=np.int64)
        lim = np.asarray(lims, dtype=np.int64)
        sa = self._s[anc]
        ta = self._t[anc]
        ax, ay = self._sx[sa], self._sy[sa]
        nbm, dm = tab[sa], dtab[sa]  # (B, K); missing neighbours: index -1, distance inf
        valid = nbm >= 0
        # Per neighbour j at distance d_j: a partner lies within d_j / c (+ tolerances) of the
        # anchor, and so does any arrival a source heard first at the anchor predicts there.
        dmt = np.where(valid, dm, 0.0) / c
        lo_t = ta[:, None] - dmt - 2 * tol
        hi_t = ta[:, None] + dmt + tol + late + sw
        # One slice of the buffer, sorted by (sensor, time): each (anchor, neighbour) window is
        # then one contiguous run found by a single vectorised search.
        # It spans every window below: the neighbours' (lo_t..hi_t) and the arrivals of a
        # source heard first at the anchor at any sensor in reach (t0 <= ta, so at most
        # reach / c after the anchor); each anchor's own decision time still limits it.
        h = self._head
        reach_full = self.reach_m / c + 2 * tol
        t_lo = float(min(lo_t.min(), ta.min() - reach_full))
        t_hi = float(max(hi_t.max(), ta.max() + reach_full + late + sw))
        g1 = min(int(lim.max()), h + int(np.searchsorted(self._t[h : self._n], t_hi, "right")))
        g0 = h + int(np.searchsorted(self._t[h:g1], t_lo))
        if g1 <= g0:
            return out
        idx = np.arange(g0, g1)
        order = np.argsort(self._s[idx], kind="stable")
        ii = idx[order]
        base = float(self._t[g0])
        span = float(self._t[g1 - 1]) - base + 1.0
        key = self._s[ii] * span + (self._t[ii] - base)
        q = np.where(valid, nbm, 0).astype(float) * span
        a = np.searchsorted(key, (q + (lo_t - base)).ravel(), "left")
        z = np.searchsorted(key, (q + (hi_t - base)).ravel(), "right")
        cnt = np.where(valid.ravel(), z - a, 0)
        tot = int(cnt.sum())
        if tot == 0:
            return out
        qid = np.repeat(np.arange(nb_all * k), cnt)
        pos = np.arange(tot) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(a, cnt)
        e_idx = ii[pos]
        e_b, e_r = qid // k, qid % k
        ok = e_idx < lim[e_b]
        e_idx, e_b, e_r = e_idx[ok], e_b[ok], e_r[ok]
        e_dt = self._t[e_idx] - ta[e_b]
        # Partners: free, after the anchor, time difference physically possible.
        pm = (
            (self._state[e_idx] == _FREE)
            & (e_idx > anc[e_b])
            & (e_r < kp)
            & (np.abs(e_dt) <= dm[e_b, e_r] / c + tol + late)
        )
        pb, pr, pdt = e_b[pm], e_r[pm], e_dt[pm]
        if len(pb) < 2:
            return out
        # Bounded work per anchor: the first ``gate_cap`` partners (nearest sensors first).
        first_of = np.searchsorted(pb, pb, "left")
        capm = (np.arange(len(pb)) - first_of) < self.gate_cap
        pb, pr, pdt = pb[capm], pr[capm], pdt[capm]
        run = np.concatenate(([True], (pb[1:] != pb[:-1]) | (pr[1:] != pr[:-1])))
        ndist = np.bincount(pb[run], minlength=nb_all)
        keep = ndist[pb] >= self.min_sensors - 1
        pb, pr, pdt = pb[keep], pr[keep], pdt[keep]
        n_p = len(pb)
        if n_p < 2:
            return out
        m = np.bincount(pb, minlength=nb_all)
        gstart = np.cumsum(m) - m
        kpos = np.arange(n_p) - gstart[pb]
        nafter = m[pb] - 1 - kpos
        n_pairs = int(nafter.sum())
        if n_pairs == 0:
            return out
        fi = np.repeat(np.arange(n_p), nafter)
        se = fi + 1 + np.arange(n_pairs) - np.repeat(np.cumsum(nafter) - nafter, nafter)
        dif = pr[fi] != pr[se]
        fi, se = fi[dif], se[dif]
        if len(fi) == 0:
            return out
        ps = nbm[pb, pr]
        px, py = self._sx[ps] - ax[pb], self._sy[ps] - ay[pb]
        pd = pdt * c
        # Anchor at the origin, r_i = r_A + d_i:
        #   x_i x + y_i y = (x_i^2 + y_i^2 - d_i^2) / 2 - r_A d_i   (i = the two partners)
        xb, yb, db, xc, yc, dc = px[fi], py[fi], pd[fi], px[se], py[se], pd[se]
        det = xb * yc - yb * xc
        good = np.abs(det) > 1e-6 * np.hypot(xb, yb) * np.hypot(xc, yc)
        det = np.where(good, det, 1.0)
        ub, uc = (xb * xb + yb * yb - db * db) / 2, (xc * xc + yc * yc - dc * dc) / 2
        p0x, p0y = (yc * ub - yb * uc) / det, (xb * uc - xc * ub) / det
        qx, qy = (yc * db - yb * dc) / det, (xb * dc - xc * db) / det
        qa = qx * qx + qy * qy - 1.0
        qb = -2.0 * (p0x * qx + p0y * qy)
        qc = p0x * p0x + p0y * p0y
        # Noise can pull two nearly touching hyperbolae apart: take the closest point then.
        disc = np.sqrt(np.maximum(qb * qb - 4 * qa * qc, 0.0))
        lin = np.abs(qa) < 1e-9
        qa = np.where(lin, 1.0, qa)
        lin_ra = -qc / np.where(qb == 0, 1.0, qb)
        ra = np.concatenate(
            (
                np.where(lin, lin_ra, (-qb + disc) / (2 * qa)),
                np.where(lin, lin_ra, (-qb - disc) / (2 * qa)),
            )
        )
        good2 = np.tile(good, 2) & np.isfinite(ra) & (ra >= 0) & (ra <= self.reach_m)
        sol_b = np.tile(pb[fi], 2)[good2]
        if len(sol_b) == 0:
            return out
        ra = ra[good2]
        sx = np.tile(p0x, 2)[good2] - ra * np.tile(qx, 2)[good2]
        sy = np.tile(p0y, 2)[good2] - ra * np.tile(qy, 2)[good2]
        # Solutions are grouped by anchor; pair each with every partner of its anchor.
        srt = np.argsort(sol_b, kind="stable")
        sol_b, ra, sx, sy = sol_b[srt], ra[srt], sx[srt], sy[srt]
        n_s = len(sol_b)
        reps = m[sol_b]
        tot3 = int(reps.sum())
        e_s = np.repeat(np.arange(n_s), reps)
        e_p = gstart[sol_b][e_s] + np.arange(tot3) - np.repeat(np.cumsum(reps) - reps, reps)
        dist = np.hypot(sx[e_s] - px[e_p], sy[e_s] - py[e_p])
        res = pdt[e_p] + (ra[e_s] - dist) / c
        cons = (res >= -tol) & (res <= tol + late) & (dist <= self.reach_m)
        pre = pr[e_p]
        runs = np.flatnonzero(
            np.concatenate(([True], (e_s[1:] != e_s[:-1]) | (pre[1:] != pre[:-1])))
        )
        any_run = np.logical_or.reduceat(cons, runs)
        count = 1 + np.bincount(e_s[runs], weights=any_run, minlength=n_s)
        # Among equally supported sources prefer the tighter fit and the earliest pulses
        # (direct arrivals come first, echoes later), as the grid search does.
        fit = np.where(cons, np.abs(res) + 0.1 * np.maximum(pdt[e_p], 0.0), 0.0)
        spread = np.bincount(e_s, weights=fit, minlength=n_s)
        heard_d = np.maximum.reduceat(np.where(cons, dist, 0.0), np.cumsum(reps) - reps)
        # One try per anchor, as the full search: its best supported source, ties to the
        # tighter fit (three sensors always fit some source; which one is tried decides).
        order_s = np.lexsort((spread, -count, sol_b))
        sbo = sol_b[order_s]
        firsts = order_s[np.concatenate(([True], sbo[1:] != sbo[:-1]))]
        best = firsts[count[firsts] >= self.min_sensors]
        if len(best) == 0:
            return out
        gb = sol_b[best]
        bx, by, bra = sx[best], sy[best], ra[best]
        r_max = np.maximum(bra, heard_d[best])
        # First, loosely, among the nearest sensors inside the reporting radius (pulses in
        # hand): at least the least strict share of the silence rule must have answered.
        nbg = nbm[gb]
        vg = nbg >= 0
        nbi = np.where(vg, nbg, 0)
        dn = np.hypot(
            bx[:, None] - (self._sx[nbi] - ax[gb][:, None]),
            by[:, None] - (self._sy[nbi] - ay[gb][:, None]),
        )
        dn = np.where(vg, dn, np.inf)
        inside = dn <= r_max[:, None] + 1e-6
        arr_n = (ta[gb] - bra / c)[:, None] + dn / c
        row = np.full(nb_all, -1)
        row[gb] = np.arange(len(gb))
        er = row[e_b]
        sel = er >= 0
        rr, rk = er[sel], e_r[sel]
        dev = self._t[e_idx[sel]] - arr_n[rr, rk]
        hit = (dev >= -2 * tol) & (dev <= sw)
        resp_n = np.zeros(arr_n.shape, dtype=bool)
        resp_n[rr[hit], rk[hit]] = True
        loose = 0.75 * self.min_heard_fraction
        local_ok = (resp_n & inside).sum(axis=1) >= loose * inside.sum(axis=1) - 1e-9
        if not local_ok.any():
            return out
        gb, bx, by, bra = gb[local_ok], bx[local_ok], by[local_ok], bra[local_ok]
        # The silence rule over every sensor in reach of the source (as the full search
        # applies it at its node): members are free pulses after the anchor within the
        # tolerance of the predicted arrival; any pulse near it shows a sensor was not deaf.
        t0b = ta[gb] - bra / c
        due = self._t[np.maximum(lim[gb] - 1, 0)]
        centres = np.c_[bx + ax[gb], by + ay[gb]]
        balls = self._tree.query_ball_point(centres, r=self.reach_m)
        ln = np.array([len(v) for v in balls], dtype=np.int64)
        cat = np.concatenate([np.asarray(v, dtype=np.int64) for v in balls])
        qrow = np.repeat(np.arange(len(gb)), ln)
        dq = np.hypot(self._sx[cat] - centres[qrow, 0], self._sy[cat] - centres[qrow, 1])
        arr = t0b[qrow] + dq / c
        kq = cat * span - base
        hi_r = np.minimum(arr + sw, due[qrow])
        a = np.searchsorted(key, kq + arr - 2 * tol, "left")
        z = np.searchsorted(key, kq + hi_r, "right")
        responsive = z > a
        a = np.searchsorted(key, kq + arr - tol, "left")
        z = np.searchsorted(key, kq + np.minimum(arr + tol + late, due[qrow]), "right")
        cnt = np.maximum(z - a, 0)
        tot4 = int(cnt.sum())
        heard = np.zeros(len(cat), dtype=bool)
        if tot4:
            eq = np.repeat(np.arange(len(cat)), cnt)
            ep = ii[np.arange(tot4) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(a, cnt)]
            good4 = (self._state[ep] == _FREE) & (ep > anc[gb][qrow[eq]])
            heard[eq[good4]] = True
        heard |= cat == sa[gb][qrow]
        responsive |= heard
        n_heard = np.bincount(qrow, weights=heard, minlength=len(gb))
        dh = np.where(heard, dq, np.inf)
        r_max = np.full(len(gb), -np.inf)
        np.maximum.at(r_max, qrow, np.where(heard, dq, -np.inf))
        # median reporting distance per source: sort (row, distance) and take the middle
        srt_h = np.lexsort((dh, qrow))
        first_h = np.searchsorted(qrow[srt_h], np.arange(len(gb)), "left")
        nh = n_heard.astype(np.int64)
        lo_m = dh[srt_h][np.minimum(first_h + (nh - 1) // 2, len(dh) - 1)]
        hi_m = dh[srt_h][np.minimum(first_h + nh // 2, len(dh) - 1)]
        r_med = (lo_m + hi_m) / 2
        near = dq <= r_max[qrow] + 1e-6
        near_med = dq <= r_med[qrow] + 1e-6
        n_near = np.bincount(qrow, weights=near, minlength=len(gb))
        n_near_resp = np.bincount(qrow, weights=near & responsive, minlength=len(gb))
        n_med = np.bincount(qrow, weights=near_med, minlength=len(gb))
        n_med_resp = np.bincount(qrow, weights=near_med & responsive, minlength=len(gb))
        shortfall = np.maximum(0, self.dims + 3 - n_heard)
        base_f = self.min_heard_fraction
        need = 0.75 * base_f + (1 - 0.75 * base_f) * np.minimum(1.0, shortfall / 2)
        passed = (
            (n_heard >= self.min_sensors)
            & (n_near_resp >= need * n_near - 1e-9)
            & (n_med_resp >= base_f * n_med - 1e-9)
        )
        for j in np.flatnonzero(passed):
            g = int(gb[j])
            out[g] = (float(bx[j] + ax[g]), float(by[j] + ay[g]))
        return out

    def _neighbour_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Per sensor its ``4 x gate_k`` nearest sensors within 2 x reach, nearest first (index -1
        and distance inf where there are fewer)."""
        if self._nb_tab is None or len(self._nb_tab) != len(self._sx):
            n = len(self._sx)
            k = min(_SILENCE_NEIGHBOURS * self.gate_k, max(n - 1, 1))
            xy = np.c_[self._sx, self._sy]
            dist, ix = cKDTree(xy).query(xy, k=k + 1, distance_upper_bound=2 * self.reach_m)
            dist, ix = np.atleast_2d(dist)[:, 1:], np.atleast_2d(ix)[:, 1:]
            missing = ~np.isfinite(dist)
            self._tree = cKDTree(xy)
            self._nb_tab = np.where(missing, -1, ix).astype(np.int64)
            self._nbd_tab = np.where(missing, np.inf, dist)
            self._nb_lists = [
                (
                    [int(v) for v in row[row >= 0]],
                    [float(v) / self.c + self.tol_s + self.late_s for v in d[row >= 0]],
                )
                for row, d in zip(
                    self._nb_tab[:, : self.gate_k], self._nbd_tab[:, : self.gate_k], strict=True
                )
            ]
        assert self._nbd_tab is not None
        return self._nb_tab, self._nbd_tab

    def _precheck(self, i: int, due: float) -> bool:
        """Necessary for the gate, in plain Python: at least ``min_sensors - 1`` of the
        nearest sensors hold *some* pulse within the possible time difference."""
        self._neighbour_table()
        nbs, wins = self._nb_lists[int(self._s[i])]
        ta = float(self._t[i])
        need = self.min_sensors - 1
        got = 0
        times = self._times
        for s, w in zip(nbs, wins, strict=True):
            lst = times.get(s)
            if lst:
                j = bisect_left(lst, ta - w)
                if j < len(lst) and lst[j] <= ta + w and lst[j] <= due:
                    got += 1
                    if got >= need:
                        return True
        return False

    def _candidates(self, i: int) -> np.ndarray:
        """Buffer indices of free pulses that could share a source with pulse ``i``."""
        ta = self._t[i]
        sa = int(self._s[i])
        span = 2 * self.reach_m / self.c + self.tol_s + self.late_s
        h, n = self._head, self._lim
        # Anchors are taken in buffer order, so every pulse before ``i`` is spent already.
        lo = i
        hi = h + int(np.searchsorted(self._t[h:n], ta + span, "right"))
        idx = np.arange(lo, hi)
        idx = idx[self._state[lo:hi] == _FREE]
        sidx = self._s[idx]
        d = np.hypot(self._sx[sidx] - self._sx[sa], self._sy[sidx] - self._sy[sa])
        dt = np.abs(self._t[idx] - ta)
        ok = (d <= 2 * self.reach_m) & (dt <= d / self.c + self.tol_s + self.late_s)
        ok &= (sidx != sa) | (idx == i)
        return idx[ok]

    def _nucleate(
        self, i: int, now: float, seeds: list[tuple[float, float]] | None
    ) -> ShotLocation | None:
        cand = self._candidates(i)
        sidx = self._s[cand]
        if len(np.unique(sidx)) < self.min_sensors:
            self.stats.anchors_fast_rejected += 1
            self._state[i] = _DONE
            return None
        if seeds and not any(self._seed_silence_ok(i, cand, q) for q in seeds):
            self.stats.seed_rejected += 1
            self._state[i] = _DONE
            return None
        self.stats.grid_searches += 1
        shot = None
        anchor = self._pulses[i]
        for chosen, node_xy in self._grid_select(i, cand, seeds):
            shot = self._locate_and_check(chosen, node_xy, cand, now)
            if shot is not None and anchor is not None and not self._anchor_belongs(shot, anchor):
                self.stats.anchor_misfits += 1
                shot = None
            if shot is not None:
                break
        if shot is None:
            self.stats.rejected_sets += 1
            self._state[i] = _DONE
            return None
        ids = set(shot.pulse_ids) - set(shot.outliers)
        arrivals: dict[str, float] = {}
        levels: dict[str, float] = {}
        for j in cand:
            p = self._pulses[j]
            if p is not None and p.pulse_id in ids:
                self._state[j] = _USED
                arrivals[p.sensor] = p.t_s
                levels[p.sensor] = p.level_db_spl
        if self._state[i] == _FREE:
            self._state[i] = _DONE
        self._recent.append(_Recent(shot.x_m, shot.y_m, shot.t0_s, arrivals, levels))
        self.stats.shots += 1
        return shot

    def _seed_silence_ok(self, i: int, cand: np.ndarray, seed: tuple[float, float]) -> bool:
        """The silence rule for the set the final grid level would take at the seed (earliest
        pulse per sensor within its tolerance): checked before the grid search, as a set
        whose silence fails here fails at the refined node too, nearly always."""
        tol = self.tol_s + 1.5 * (self.coarse_m / 16.0) / self.c
        sidx = self._s[cand]
        d = np.hypot(self._sx[sidx] - seed[0], self._sy[sidx] - seed[1])
        o = self._t[cand] - d / self.c
        dev = o - o[cand == i][0]
        cons = (dev >= -tol) & (dev <= tol + self.late_s)
        heard = [int(v) for v in np.unique(sidx[cons])]
        if len(heard) < self.min_sensors:
            return False
        t0 = float(np.median(o[cons]))
        return self._passes_silent_rule(seed[0], seed[1], t0, heard)

    def _grid_select(
        self, i: int, cand: np.ndarray, seeds: list[tuple[float, float]] | None = None
    ) -> list[tuple[np.ndarray, tuple[float, float]]]:
        """Coarse-to-fine grid around the anchor's sensor; returns candidate pulse sets
        (buffer indices, one pulse per sensor), best supported first.

        With ``seeds`` (source positions from the gate) the two finer levels run around each
        seed, over only the candidates that can agree with a node that close to it."""
        sa = int(self._s[i])
        ax, ay = float(self._sx[sa]), float(self._sy[sa])
        step = self.coarse_m
        if seeds is not None:
            sidx0 = self._s[cand]
            ct0 = self._t[cand] - self._t[i]
            margin = 2.0 * 0.75 * step * math.sqrt(2.0) / self.c
            keep = cand == i
            for qx, qy in seeds:
                d_a = math.hypot(qx - ax, qy - ay)
                dev = ct0 - (np.hypot(self._sx[sidx0] - qx, self._sy[sidx0] - qy) - d_a) / self.c
                keep |= (dev >= -self.tol_s - margin) & (dev <= self.tol_s + self.late_s + margin)
            cand = cand[keep]
        order = np.argsort(self._s[cand], kind="stable")
        cand = cand[order]
        sidx = self._s[cand]
        starts = np.flatnonzero(np.r_[True, sidx[1:] != sidx[:-1]])
        cx = self._sx[sidx] - ax
        cy = self._sy[sidx] - ay
        ct = self._t[cand] - self._t[i]
        a_pos = int(np.flatnonzero(cand == i)[0])
        late_of = ct - ct.min()

        def score(gx: np.ndarray, gy: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
            d = np.hypot(gx[:, None] - cx[None, :], gy[:, None] - cy[None, :])
            o = ct[None, :] - d / self.c
            dev = o - o[:, a_pos : a_pos + 1]
            cons = (dev >= -tol) & (dev <= tol + self.late_s)
            count = np.logical_or.reduceat(cons, starts, axis=1).sum(axis=1)
            spread = np.where(cons, np.minimum(np.abs(dev), tol), 0.0).sum(axis=1)
            # Among equally supported nodes prefer the earliest pulses: direct arrivals come
            # first, echoes later (this decides three-sensor sets, which always fit).
            lateness = np.where(cons, late_of, 0.0).sum(axis=1)
            return count, spread + 0.1 * lateness

        r = self.reach_m
        finals: list[tuple[int, float, float, float]] = []
        if seeds is None:
            ax_nodes = np.arange(-r, r + step / 2, step)
            gx, gy = np.meshgrid(ax_nodes, ax_nodes, indexing="ij")
            gx, gy = gx.ravel(), gy.ravel()
            inside = gx * gx + gy * gy <= r * r
            levels = [(gx[inside], gy[inside], step)]
            first = 0
        else:
            # A closed-form seed is better than a coarse node: the middle level runs over half
            # the coarse cell's reach around it, then the finest.
            off = np.arange(-0.75 * step, 0.75 * step + step / 8, step / 4)
            ox, oy = (v.ravel() for v in np.meshgrid(off, off, indexing="ij"))
            levels = [(qx - ax + ox, qy - ay + oy, step / 4) for qx, qy in seeds]
            first = 1
        for level in range(first, 3):
            nxt = []
            for sx, sy, st in levels:
                tol = self.tol_s + 1.5 * st / self.c
                count, spread = score(sx, sy, tol)
                if level == 2:
                    k = int(np.lexsort((spread, -count))[0])
                    finals.append((int(count[k]), float(spread[k]), float(sx[k]), float(sy[k])))
                    continue
                top = np.lexsort((spread, -count))
                maxc = int(count[top[0]])
                picked: list[int] = []
                for k in top[:200]:
                    if count[k] < maxc - 1 or len(picked) >= 4:
                        break
                    if all(math.hypot(sx[k] - sx[q], sy[k] - sy[q]) > 2 * st for q in picked):
                        picked.append(int(k))
                fine = st / 4.0
                off = np.arange(-1.5 * st, 1.5 * st + fine / 2, fine)
                ox, oy = np.meshgrid(off, off, indexing="ij")
                for k in picked:
                    nxt.append((sx[k] + ox.ravel(), sy[k] + oy.ravel(), fine))
            levels = nxt
        finals.sort(key=lambda f: (-f[0], f[1]))
        tol = self.tol_s + 1.5 * (self.coarse_m / 16.0) / self.c
        sets: list[tuple[np.ndarray, tuple[float, float]]] = []
        seen: set[frozenset[int]] = set()
        for count_k, _, bx, by in finals:
            if count_k < self.min_sensors or len(sets) >= self.max_tries:
                break
            d = np.hypot(bx - cx, by - cy)
            o = ct - d / self.c
            dev = o - o[a_pos]
            cons = (dev >= -tol) & (dev <= tol + self.late_s)
            chosen = []
            for k0, k1 in zip(starts, [*starts[1:], len(cand)], strict=True):
                ks = [k for k in range(k0, k1) if cons[k]]
                if ks:
                    chosen.append(min(ks, key=lambda k: ct[k]))
            key = frozenset(chosen)
            if len(chosen) >= self.min_sensors and key not in seen:
                seen.add(key)
                chosen_idx = cand[np.array(sorted(chosen), dtype=np.int64)]
                sets.append((chosen_idx, (bx + ax, by + ay)))
        return sets

    def _locate_and_check(
        self, chosen: np.ndarray, node_xy: tuple[float, float], cand: np.ndarray, now: float
    ) -> ShotLocation | None:
        # Cheap evidence first, at the grid node: most chance alignments end here.
        heard0 = [int(v) for v in np.unique(self._s[chosen])]
        d0 = np.hypot(
            self._sx[self._s[chosen]] - node_xy[0], self._sy[self._s[chosen]] - node_xy[1]
        )
        t00 = float(np.median(self._t[chosen] - d0 / self.c))
        if not self._passes_silent_rule(node_xy[0], node_xy[1], t00, heard0):
            return None
        if not self._significant(node_xy[0], node_xy[1], t00, heard0):
            return None
        pulses = [p for p in (self._pulses[j] for j in chosen) if p is not None]
        if self._recent:
            # The echo rule, leniently, before any location: only a set that fails it even
            # with a generous position error and two more members is dropped here.
            probe = _Probe(
                node_xy[0], node_xy[1], t00, tuple(p.pulse_id for p in pulses), (), _PROBE_U_M
            )
            if not self._passes_echo_rule(probe, {p.pulse_id: p for p in pulses}, extra=2):
                self.stats.echo_prechecked += 1
                return None
        shot = locate(
            pulses,
            c_mps=self.c,
            dims=self.dims,
            settings=self.settings.location,
            created_s=now if math.isfinite(now) else self._now,
            start_xy=node_xy,
        )
        if shot is None:
            return None
        # Re-check membership against the located source: per sensor the earliest pulse
        # whose residual is within tolerance (early side tight, late side allows NLOS).
        for _ in range(2):
            new = self._members(shot, cand)
            if len(new) < self.min_sensors:
                return None
            if {p.pulse_id for p in new} == set(shot.pulse_ids):
                break
            relocated = locate(
                new,
                c_mps=self.c,
                dims=self.dims,
                settings=self.settings.location,
                created_s=shot.provenance.created_s if shot.provenance else 0.0,
                start_xy=(shot.x_m, shot.y_m),
            )
            if relocated is None:
                return None
            shot = relocated
        n_in = len(shot.pulse_ids) - len(shot.outliers)
        if n_in < self.min_sensors or shot.residual_rms_s > self.tol_s:
            return None
        by_id = {pid: p for pid in shot.pulse_ids if (p := self._pulse_by_id.get(pid)) is not None}
        if not self._passes_echo_rule(shot, by_id):
            return None
        heard = self._heard_idx(shot)
        if not self._passes_silent_rule(shot.x_m, shot.y_m, shot.t0_s, heard):
            return None
        if not self._significant(shot.x_m, shot.y_m, shot.t0_s, heard):
            return None
        if shot.ambiguous:
            shot = self._resolve_with_silent(shot, new)
        return shot

    def _members(self, shot: ShotLocation, cand: np.ndarray) -> list[Pulse]:
        sidx = self._s[cand]
        d = np.hypot(self._sx[sidx] - shot.x_m, self._sy[sidx] - shot.y_m)
        d = np.hypot(d, self._sz[sidx] - shot.z_m)  # the solver's slant distance
        r = self._t[cand] - shot.t0_s - d / self.c
        ok = (r >= -self.tol_s) & (r <= self.tol_s + self.late_s)
        best: dict[int, int] = {}
        for j, s, good in zip(cand, sidx, ok, strict=True):
            if good and (int(s) not in best or self._t[j] < self._t[best[int(s)]]):
                best[int(s)] = int(j)
        return [p for p in (self._pulses[j] for j in best.values()) if p is not None]

    def _passes_echo_rule(
        self, shot: ShotLocation | _Probe, by_id: dict[str, Pulse], *, extra: int = 0
    ) -> bool:
        """Reject sets made mostly of pulses in the reverberation tail of recent shots (at the
        same sensors), unless the new shot is near one of them (another round from the same
        place) or is about as well supported as the shot whose tail it sits in."""
        if not self._recent:
            return True
        out = set(shot.outliers)
        used = [by_id[pid] for pid in shot.pulse_ids if pid not in out and pid in by_id]
        # A split of a shot just located (same place, same origin time) is not a new shot.
        for rec in self._recent if not extra else ():
            if abs(shot.t0_s - rec.t0_s) <= self.same_shot_s and math.hypot(
                shot.x_m - rec.x_m, shot.y_m - rec.y_m
            ) <= max(3.0 * shot.uncertainty_m, 25.0):
                self.stats.split_duplicates += 1
                return False
        in_tail = 0
        level_steps: list[float] = []
        for p in used:
            for rec in self._recent:
                # The tail starts at the direct arrival this shot predicts at the sensor,
                # whether or not that sensor's direct pulse was used.
                ta = rec.arrivals.get(p.sensor)
                if ta is None:
                    ta = rec.t0_s + math.hypot(p.x_m - rec.x_m, p.y_m - rec.y_m) / self.c
                if -self.tol_s < p.t_s - ta <= self.echo_tail_s:
                    in_tail += 1
                    step = p.level_db_spl - rec.levels_db.get(p.sensor, math.nan)
                    # An unknown level cannot vouch for "another round": count as a mismatch.
                    level_steps.append(abs(step) if math.isfinite(step) else math.inf)
                    break
        if in_tail < max(0.5 * len(used), self.min_sensors - 1):
            return True
        # Another round from the same gun arrives as loud as the first at every sensor
        # (Pittsburgh: within ~1 dB); reflections lose several dB and vary per sensor, so
        # nearly all (80 %) of the shared sensors must match.
        matched = sum(1 for v in level_steps if v <= self.round_level_db)
        if matched >= self.min_sensors - 1 and matched >= 0.8 * len(level_steps):
            return True
        near_any = any(
            math.hypot(shot.x_m - rec.x_m, shot.y_m - rec.y_m)
            <= max(3.0 * shot.uncertainty_m, 15.0)
            for rec in self._recent
        )
        if near_any:
            return True
        biggest = max(len(rec.arrivals) for rec in self._recent)
        return len(used) + extra >= max(2 * self.min_sensors, math.ceil(0.6 * biggest))

    def _anchor_belongs(self, shot: ShotLocation, anchor: Pulse) -> bool:
        """The anchor must agree with the source the *other* members define.

        An early echo used as anchor can bend a set of another shot's direct arrivals towards
        itself (the tolerance leaves a few metres of play); located without it, the others
        then predict an arrival the anchor misses. Such a set is left for its own anchor.
        """
        if anchor.pulse_id not in shot.pulse_ids or anchor.pulse_id in shot.outliers:
            return False
        out = set(shot.outliers)
        others = [
            p
            for p in (self._pulse_by_id.get(pid) for pid in shot.pulse_ids)
            if p is not None and p.pulse_id not in out and p.pulse_id != anchor.pulse_id
        ]
        if len(others) < self.dims + 2:
            return True
        loo = locate(
            others,
            c_mps=self.c,
            dims=self.dims,
            settings=self.settings.location,
            start_xy=(shot.x_m, shot.y_m),
        )
        if loo is None:
            return False
        d = math.hypot(anchor.x_m - loo.x_m, anchor.y_m - loo.y_m)
        r = anchor.t_s - loo.t0_s - d / self.c
        return -self.tol_s <= r <= self.tol_s + self.late_s

    def _heard_idx(self, shot: ShotLocation) -> list[int]:
        out = set(shot.outliers)
        return [
            self._sidx[s]
            for s, pid in zip(shot.sensors, shot.pulse_ids, strict=True)
            if pid not in out and s in self._sidx
        ]

    def _responsive(self, t0_s: float, d_all: np.ndarray, near: np.ndarray) -> np.ndarray:
        """Which of the ``near`` sensors reported any pulse (used or not) from slightly before
        to ``silence_window_s`` after the arrival a source at ``t0_s`` predicts for them."""
        arrival = t0_s + d_all / self.c
        lo_t = float(arrival[near].min()) - 2 * self.tol_s
        hi_t = float(arrival[near].max()) + self.silence_window_s
        h, n = self._head, self._lim
        lo = h + int(np.searchsorted(self._t[h:n], lo_t))
        hi = h + int(np.searchsorted(self._t[h:n], hi_t, "right"))
        ts = self._t[lo:hi]
        ss = self._s[lo:hi]
        dt = ts - arrival[ss]
        hit = (dt >= -2 * self.tol_s) & (dt <= self.silence_window_s)
        responsive = np.zeros(len(self._sx), dtype=bool)
        responsive[ss[hit]] = True
        return responsive

    def _passes_silent_rule(self, x_m: float, y_m: float, t0_s: float, heard: list[int]) -> bool:
        """Sensors in service that are closer to the source than the reporting ones should
        mostly have reported *something* near the predicted arrival (a late non-line-of-sight
        pulse counts: the sensor was not deaf to it); a chance alignment of unrelated pulses
        usually sits among sensors that stayed silent."""
        if not heard:
            return False
        d_all = np.hypot(self._sx - x_m, self._sy - y_m)
        d_heard = d_all[heard]
        r_max = float(np.max(d_heard))
        near = np.flatnonzero(d_all <= r_max + 1e-6)
        responsive = self._responsive(t0_s, d_all, near)
        responsive[heard] = True
        # Little redundancy (3 or 4 sensors in 2-D) fits almost any chance alignment, so the
        # evidence of silence is demanded more strictly.
        shortfall = max(0, 5 - len(heard))
        base = self.min_heard_fraction
        need_max = 0.75 * base + (1 - 0.75 * base) * min(1, shortfall / 2)
        if int(responsive[near].sum()) < need_max * len(near) - 1e-9:
            return False
        # ... and among the sensors nearest the source, which hear a real shot best.
        r_med = float(np.median(d_heard))
        near_med = np.flatnonzero(d_all <= r_med + 1e-6)
        return int(responsive[near_med].sum()) >= base * len(near_med) - 1e-9

    def _significant(self, x_m: float, y_m: float, t0_s: float, heard: list[int]) -> bool:
        """Is the number of agreeing sensors more than chance would give?

        Each sensor ``j`` within the reporting radius has a local pulse rate ``lambda_j``
        (its pulses within +-1 s of the predicted arrival, the shot's own excluded) and so a
        chance ``p_j = 1 - exp(-lambda_j * w)`` of holding *some* pulse inside the acceptance
        window ``w``. The shot must beat the chance count by ``significance_z`` standard
        deviations: busy echo-filled periods demand more sensors, a quiet network few.
        """
        if not heard:
            return False
        d_all = np.hypot(self._sx - x_m, self._sy - y_m)
        radius = float(np.max(d_all[heard]))
        near = np.flatnonzero(d_all <= radius + 1e-6)
        arrival = t0_s + d_all / self.c
        lo_t = float(arrival[near].min()) - 1.0
        hi_t = float(arrival[near].max()) + 1.0
        h, n = self._head, self._lim
        lo = h + int(np.searchsorted(self._t[h:n], lo_t))
        hi = h + int(np.searchsorted(self._t[h:n], hi_t, "right"))
        ts = self._t[lo:hi]
        ss = self._s[lo:hi]
        close = np.abs(ts - arrival[ss]) <= 1.0
        counts = np.bincount(ss[close], minlength=len(self._sx)).astype(float)
        counts[heard] = np.maximum(counts[heard] - 1.0, 0.0)
        rate = counts[near] / 2.0
        window = 2 * self.tol_s + self.late_s
        p = 1.0 - np.exp(-rate * window)
        mean = float(p.sum())
        sd = math.sqrt(float(np.sum(p * (1 - p))))
        return len(heard) >= mean + self.significance_z * sd

    def _resolve_with_silent(self, shot: ShotLocation, members: Sequence[Pulse]) -> ShotLocation:
        heard = set(shot.sensors)
        silent = [s for s in self._sensor_objs if s.serial not in heard]
        if not silent:
            return shot
        relocated = locate(
            members,
            c_mps=self.c,
            dims=self.dims,
            settings=self.settings.location,
            created_s=shot.provenance.created_s if shot.provenance else 0.0,
            silent_sensors=silent,
        )
        return relocated or shot


def associate_all(
    pulses: Iterable[Pulse],
    *,
    settings: Settings | None = None,
    c_mps: float = 343.0,
    sensors: Iterable[Sensor] | None = None,
    dims: int | None = None,
) -> tuple[list[ShotLocation], AssociatorStats]:
    """Convenience: feed every pulse in time order, flush, return shots and counters."""
    a = Associator(settings, c_mps, sensors, dims=dims)
    shots: list[ShotLocation] = []
    for p in sorted(pulses, key=lambda p: (p.t_s, p.sensor, p.pulse_id)):
        shots.extend(a.feed(p))
    shots.extend(a.flush())
    return shots, a.stats
