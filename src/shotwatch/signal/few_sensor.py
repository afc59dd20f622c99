"""Grouping the picks of a handful of recordings into shots (``locate --from-audio``).

A folder of raw recordings usually holds few sensors (the published live-fire tests: 4-6,
a deployed incident: 4). The streaming associator is built for a network: it anchors on one
pulse at a time and leans on many sensors' agreement. With four sensors, picks that carry
echoes and non-line-of-sight (late) arrivals, one wrong early decision there consumes the
pulses of a real shot. Few sensors make exhaustive hypothesis testing cheap instead:

1. **Hypotheses.** Every triple of picks from three different sensors whose pairwise time
   differences are physically possible (``|dt| <= distance / c + tolerance``) defines up to
   two sources exactly (closed-form 2-D TDOA: positions are linear in the range to the first
   sensor, which solves a quadratic). Sources farther than the station reach are dropped.
2. **Support.** For each hypothesis every sensor's picks are tested against the arrival it
   predicts: a sensor agrees when one of its free picks lies within ``[-tol, tol + late]``
   (late side wider: non-line-of-sight paths only ever delay). Per sensor the earliest
   agreeing pick is kept (echoes come later).
3. **Greedy, loudest first.** The hypothesis with at least three agreeing sensors and the
   largest summed SNR of its members (ties: the earliest) is located with
   the product's robust solver, its membership re-checked against the located source, and
   accepted; its picks are consumed and support is recomputed. Each hypothesis is tried at
   most once.
4. **Evidence against chance sets.** A set heard only in the reverberation tail of a shot
   already accepted must land near that shot (another round from the same gun) or be
   rejected: echoes are mutually consistent only by chance. A set is rejected too when the
   sensors closer to it than its farthest member that recorded nothing near their predicted
   arrival number at least its members minus one.

No ground truth and no per-file parameter is used: the early tolerance is the association
setting; the late side is widened to :data:`NLOS_LATE_S` (ADR 0022).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shotwatch.core.model import Pulse, Sensor, ShotLocation
from shotwatch.core.settings import Settings
from shotwatch.location.locate import locate

#: Above this many sensors in one folder the network associator is used instead.
MAX_SENSORS = 12
#: Late side of the agreement window for recordings (non-line-of-sight excess delay). Urban
#: diffraction around buildings delays a direct arrival by tens of milliseconds; with four
#: to six sensors a set cannot afford to lose such a sensor. Chosen by leave-one-firing-
#: position-out cross-validation over {8, 20, 35, 50} ms on Pittsburgh (five of six folds
#: chose 35, one tied 20/35; bench/locate_from_audio.py --cv-late).
NLOS_LATE_S = 0.035
#: Arrival-time misfit still counted as agreement when grouping a folder's picks (the
#: network associator's nucleation tolerance is tighter; it has many sensors to choose from).
AGREEMENT_S = 0.012
#: Another round from the same gun lands within this distance (or 3x its uncertainty) of the
#: shot whose echo tail it sits in.
SAME_PLACE_M = 25.0


@dataclass(frozen=True, slots=True)
class _Hyp:
    x: float
    y: float
    o: float  # origin time
    picks: tuple[int, int, int]


def triple_sources(p: np.ndarray, t: np.ndarray, c: float) -> list[tuple[float, float, float]]:
    """Exact 2-D sources (x, y, origin time) of three arrivals ``t`` at positions ``p`` (3x2).

    With ``r_i = r_0 + c (t_i - t_0)`` the range differences make ``x`` linear in ``r_0``;
    ``|x - p_0| = r_0`` then gives a quadratic. Zero, one or two solutions.
    """
    d = c * (t - t[0])
    a = 2.0 * (p[1:] - p[0])
    if abs(np.linalg.det(a)) < 1e-9:
        return []
    sq = np.sum(p * p, axis=1)
    b = sq[1:] - sq[0] - d[1:] ** 2
    inv = np.linalg.inv(a)
    u = inv @ b
    v = inv @ (-2.0 * d[1:])
    w = u - p[0]
    qa = float(v @ v) - 1.0
    qb = 2.0 * float(w @ v)
    qc = float(w @ w)
    roots: list[float] = []
    if abs(qa) < 1e-12:
        if abs(qb) > 1e-12:
            roots.append(-qc / qb)
    else:
        disc = qb * qb - 4 * qa * qc
        if disc >= 0:
            s = math.sqrt(disc)
            roots += [(-qb - s) / (2 * qa), (-qb + s) / (2 * qa)]
    out: list[tuple[float, float, float]] = []
    for r0 in roots:
        if r0 < 0 or np.any(r0 + d < -1e-6):
            continue
        x = u + r0 * v
        out.append((float(x[0]), float(x[1]), float(t[0] - r0 / c)))
    return out


class FewSensorGrouper:
    """Group and locate the picks of one small set of sensors (see the module docstring)."""

    def __init__(
        self,
        sensors: Sequence[Sensor],
        c_mps: float,
        settings: Settings | None = None,
        *,
        dims: int | None = None,
        late_s: float | None = None,
    ) -> None:
        self.settings = settings or Settings()
        a = self.settings.association
        self.c = float(c_mps)
        self.dims = dims or self.settings.location.dims
        self.min_sensors = max(a.min_sensors, self.dims + 1)
        self.tol = AGREEMENT_S
        self.late = max(a.late_tolerance_s, NLOS_LATE_S) if late_s is None else late_s
        self.reach = a.max_station_distance_m
        self.echo_tail = a.echo_tail_s
        self.silence = a.silence_window_s
        self.sensors = list(sensors)

    def run(self, pulses: Sequence[Pulse]) -> list[ShotLocation]:
        serials = sorted({p.sensor for p in pulses})
        sidx = {s: i for i, s in enumerate(serials)}
        known = {s.serial: s for s in self.sensors}
        xy = np.zeros((len(serials), 2))
        for ser in serials:
            sensor = known.get(ser)
            if sensor is not None:
                xy[sidx[ser]] = (sensor.x_m, sensor.y_m)
        for p in pulses:  # a pulse carries its sensor's position too
            if p.sensor not in known:
                xy[sidx[p.sensor]] = (p.x_m, p.y_m)
        plist = sorted(pulses, key=lambda p: (p.t_s, p.sensor, p.pulse_id))
        if len(serials) < self.min_sensors or not plist:
            return []
        t = np.array([p.t_s for p in plist])
        snr = np.array([p.snr_db if math.isfinite(p.snr_db) else 0.0 for p in plist])
        s = np.array([sidx[p.sensor] for p in plist], dtype=np.int64)
        # Work relative to the first pick and the sensor centroid (numerical range).
        t_ref = float(t[0])
        tr = t - t_ref
        centre = xy.mean(axis=0)
        xyc = xy - centre
        hyps = self._hypotheses(xyc, tr, s)
        if not hyps:
            return []
        hx = np.array([h.x for h in hyps])
        hy = np.array([h.y for h in hyps])
        ho = np.array([h.o for h in hyps])
        # Residual of every pick against every hypothesis (hypotheses x picks).
        dist = np.hypot(hx[:, None] - xyc[s][None, :, 0], hy[:, None] - xyc[s][None, :, 1])
        res = tr[None, :] - ho[:, None] - dist / self.c
        fits = (res >= -self.tol) & (res <= self.tol + self.late)
        hp = np.array([h.picks for h in hyps], dtype=np.int64)
        alive = np.ones(len(hyps), dtype=bool)
        free = np.ones(len(plist), dtype=bool)
        n_sens = len(serials)
        accepted: list[ShotLocation] = []
        arrivals: list[dict[int, float]] = []
        tries = 0
        while tries < 4 * len(hyps):
            tries += 1
            alive &= free[hp].all(axis=1)
            if not alive.any():
                break
            ok = fits & free[None, :]
            # Per sensor: does any free pick agree, and how loud is the earliest that does?
            per = np.zeros((len(hyps), n_sens), dtype=bool)
            loud = np.zeros((len(hyps), n_sens))
            for j in range(n_sens):
                cols = np.flatnonzero(s == j)
                okj = ok[:, cols]
                per[:, j] = okj.any(axis=1)
                first = cols[np.argmax(okj, axis=1)]
                loud[:, j] = np.where(per[:, j], snr[first], 0.0)
            count = np.where(alive, per.sum(axis=1), -1)
            cand = np.flatnonzero(count >= self.min_sensors)
            if not cand.size:
                break
            # The loudest consistent set first (summed SNR of each sensor's earliest agreeing
            # pick): a direct arrival is nearly always the strongest impulse of its group at a
            # sensor, while echoes, chance picks and far-away chance alignments are weaker. A
            # plain count lets a far source, whose hyperbolae are nearly parallel, collect
            # agreeing echoes from every sensor before the real shot is tried.
            score = loud[cand].sum(axis=1)
            k = int(cand[np.lexsort((ho[cand], -score))[0]])
            alive[k] = False
            members = self._members(k, ok, res, s)
            shot = self._locate([plist[i] for i in members], (hx[k] + centre[0], hy[k] + centre[1]))
            if shot is None:
                continue
            members, shot = self._recheck(shot, plist=plist, free=free, s=s, xy=xy)
            if shot is None or len(members) < self.min_sensors:
                continue
            if shot.residual_rms_s > self.tol + self.late:
                continue
            mine = {int(s[i]): float(t[i]) for i in members}
            if not self._passes_echo_rule(shot, mine, accepted, arrivals):
                continue
            if not self._passes_silent_rule(shot, mine, t, s, xy):
                continue
            for i in members:
                free[i] = False
            accepted.append(shot)
            arrivals.append(mine)
        accepted.sort(key=lambda sh: sh.t0_s)
        return accepted

    # ------------------------------------------------------------------ pieces
    def _hypotheses(self, xyc: np.ndarray, tr: np.ndarray, s: np.ndarray) -> list[_Hyp]:
        n_sens = xyc.shape[0]
        by_sensor = [np.flatnonzero(s == j) for j in range(n_sens)]
        slack = self.tol + self.late
        out: list[_Hyp] = []
        for a, b, cc in itertools.combinations(range(n_sens), 3):
            ia, ib, ic = by_sensor[a], by_sensor[b], by_sensor[cc]
            if not (len(ia) and len(ib) and len(ic)):
                continue
            dab = float(np.hypot(*(xyc[a] - xyc[b]))) / self.c + slack
            dac = float(np.hypot(*(xyc[a] - xyc[cc]))) / self.c + slack
            dbc = float(np.hypot(*(xyc[b] - xyc[cc]))) / self.c + slack
            ta, tb, tc = tr[ia], tr[ib], tr[ic]
            m = (
                (np.abs(ta[:, None, None] - tb[None, :, None]) <= dab)
                & (np.abs(ta[:, None, None] - tc[None, None, :]) <= dac)
                & (np.abs(tb[None, :, None] - tc[None, None, :]) <= dbc)
            )
            pos = xyc[[a, b, cc]]
            for i, j, k in zip(*np.nonzero(m), strict=True):
                trip = (int(ia[i]), int(ib[j]), int(ic[k]))
                for x, y, o in triple_sources(pos, tr[list(trip)], self.c):
                    if float(np.max(np.hypot(pos[:, 0] - x, pos[:, 1] - y))) <= self.reach:
                        out.append(_Hyp(x, y, o, trip))
        return out

    def _members(self, k: int, ok: np.ndarray, res: np.ndarray, s: np.ndarray) -> list[int]:
        """Per sensor the earliest free pick agreeing with hypothesis ``k``."""
        best: dict[int, int] = {}
        for i in np.flatnonzero(ok[k]):
            j = int(s[i])
            if j not in best:  # picks are time-sorted: the first is the earliest
                best[j] = int(i)
        return sorted(best.values())

    def _locate(self, group: list[Pulse], start: tuple[float, float]) -> ShotLocation | None:
        """The product solver from its own global search and from ``start``; the better fit.

        A triple's second root can seed a local minimum that fits as well as the true source
        at the triple's own sensors; the global search does not depend on the seed.
        """
        fits = [
            locate(
                group,
                c_mps=self.c,
                dims=self.dims,
                settings=self.settings.location,
                created_s=max(p.t_s for p in group),
                start_xy=xy,
            )
            for xy in (None, (float(start[0]), float(start[1])))
        ]
        ok = [f for f in fits if f is not None]
        return min(ok, key=lambda f: f.residual_rms_s) if ok else None

    def _recheck(
        self,
        shot: ShotLocation,
        *,
        plist: list[Pulse],
        free: np.ndarray,
        s: np.ndarray,
        xy: np.ndarray,
    ) -> tuple[list[int], ShotLocation | None]:
        """Membership against the located source (earliest agreeing free pick per sensor),
        re-located until it settles (twice at most)."""
        members: list[int] = []
        for _ in range(3):
            members = []
            seen: set[int] = set()
            for i, p in enumerate(plist):
                if not free[i] or int(s[i]) in seen:
                    continue
                d = math.hypot(xy[s[i], 0] - shot.x_m, xy[s[i], 1] - shot.y_m)
                r = p.t_s - shot.t0_s - d / self.c
                if -self.tol <= r <= self.tol + self.late:
                    members.append(i)
                    seen.add(int(s[i]))
            ids = {plist[i].pulse_id for i in members}
            used = set(shot.pulse_ids) - set(shot.outliers)
            if ids == used or len(members) < self.min_sensors:
                break
            again = self._locate([plist[i] for i in members], (shot.x_m, shot.y_m))
            if again is None:
                return members, None
            shot = again
        keep = set(shot.pulse_ids) - set(shot.outliers)
        return [i for i in members if plist[i].pulse_id in keep], shot

    def _passes_echo_rule(
        self,
        shot: ShotLocation,
        mine: dict[int, float],
        accepted: list[ShotLocation],
        arrivals: list[dict[int, float]],
    ) -> bool:
        """A set heard within the echo tail of an accepted shot at (nearly) all its sensors
        must land near that shot: then it is another round from the same place."""
        for prev, arr in zip(accepted, arrivals, strict=True):
            in_tail = sum(
                1 for j, tj in mine.items() if j in arr and 0.0 < tj - arr[j] <= self.echo_tail
            )
            if in_tail < len(mine) - 1:
                continue
            near = max(SAME_PLACE_M, 3.0 * max(shot.uncertainty_m, prev.uncertainty_m))
            if math.hypot(shot.x_m - prev.x_m, shot.y_m - prev.y_m) > near:
                return False
        return True

    def _passes_silent_rule(
        self,
        shot: ShotLocation,
        mine: dict[int, float],
        t: np.ndarray,
        s: np.ndarray,
        xy: np.ndarray,
    ) -> bool:
        """Sensors closer to the source than the farthest reporting one that recorded no
        pick at all near their predicted arrival count against the set: it must be heard by
        more of them than stayed silent."""
        d = np.hypot(xy[:, 0] - shot.x_m, xy[:, 1] - shot.y_m)
        heard = list(mine)
        r_max = float(d[heard].max())
        silent = 0
        for j in np.flatnonzero(d <= r_max + 1e-6):
            if int(j) in mine:
                continue
            pred = shot.t0_s + d[j] / self.c
            dt = t[s == j] - pred
            if not np.any((dt >= -2 * self.tol) & (dt <= self.silence)):
                silent += 1
        return silent < len(heard) - 1
