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
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from shotwatch.core.errors import InputError
from shotwatch.core.model import Pulse, Sensor, ShotLocation
from shotwatch.core.settings import Settings
from shotwatch.location.locate import locate

_FREE = 0
_USED = 1
_DONE = 2  # processed as an anchor without forming a shot


@dataclass
class AssociatorStats:
    """Counters so that nothing is dropped silently."""

    pulses: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    anchors: int = 0
    anchors_fast_rejected: int = 0
    grid_searches: int = 0
    shots: int = 0
    rejected_sets: int = 0
    unassociated: int = 0
    split_duplicates: int = 0
    anchor_misfits: int = 0


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
        self.stats = AssociatorStats()
        self.unassociated_ids: deque[str] = deque(maxlen=10000)
        # Sensors: serial -> index; positions in growable arrays.
        self._sidx: dict[str, int] = {}
        self._sx = np.zeros(0)
        self._sy = np.zeros(0)
        self._sz = np.zeros(0)
        self._sensor_objs: list[Sensor] = []
        self._reach_wait: dict[int, float] = {}
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
        self._now = -math.inf
        self._recent: deque[_Recent] = deque()
        self._last_by_sensor: dict[tuple[int, float], str] = {}
        self._pulse_by_id: dict[str, Pulse] = {}

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
        return self._process(self._now)

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
            pos = max(pos, self._next_anchor)
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
    def _process(self, now: float) -> list[ShotLocation]:
        out: list[ShotLocation] = []
        while self._next_anchor < self._n:
            i = self._next_anchor
            if self._state[i] != _FREE:
                self._next_anchor += 1
                continue
            si = int(self._s[i])
            if self._t[i] + self._wait_s(si) > now:
                break
            shot = self._nucleate(i, now)
            if shot is not None:
                out.append(shot)
            self._next_anchor += 1
        self._expire()
        return out

    def _expire(self) -> None:
        """Forget pulses no future anchor can pair with (older than 2 reach / c)."""
        if self._next_anchor >= self._n:
            horizon = self._now - self.window_s
        else:
            horizon = self._t[self._next_anchor] - 2 * self.reach_m / self.c - self.late_s
        while self._head < self._next_anchor and self._t[self._head] < horizon:
            if self._state[self._head] == _DONE:
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

    def _candidates(self, i: int) -> np.ndarray:
        """Buffer indices of free pulses that could share a source with pulse ``i``."""
        ta = self._t[i]
        sa = int(self._s[i])
        span = 2 * self.reach_m / self.c + self.tol_s + self.late_s
        lo = self._head + int(np.searchsorted(self._t[self._head : self._n], ta - span))
        hi = self._head + int(np.searchsorted(self._t[self._head : self._n], ta + span, "right"))
        idx = np.arange(lo, hi)
        idx = idx[self._state[lo:hi] == _FREE]
        sidx = self._s[idx]
        d = np.hypot(self._sx[sidx] - self._sx[sa], self._sy[sidx] - self._sy[sa])
        dt = np.abs(self._t[idx] - ta)
        ok = (d <= 2 * self.reach_m) & (dt <= d / self.c + self.tol_s + self.late_s)
        ok &= (sidx != sa) | (idx == i)
        return idx[ok]

    def _nucleate(self, i: int, now: float) -> ShotLocation | None:
        self.stats.anchors += 1
        cand = self._candidates(i)
        sidx = self._s[cand]
        if len(np.unique(sidx)) < self.min_sensors:
            self.stats.anchors_fast_rejected += 1
            self._state[i] = _DONE
            return None
        self.stats.grid_searches += 1
        shot = None
        anchor = self._pulses[i]
        for chosen, node_xy in self._grid_select(i, cand):
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

    def _grid_select(
        self, i: int, cand: np.ndarray
    ) -> list[tuple[np.ndarray, tuple[float, float]]]:
        """Coarse-to-fine grid around the anchor's sensor; returns candidate pulse sets
        (buffer indices, one pulse per sensor), best supported first."""
        sa = int(self._s[i])
        ax, ay = float(self._sx[sa]), float(self._sy[sa])
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
        step = self.coarse_m
        ax_nodes = np.arange(-r, r + step / 2, step)
        gx, gy = np.meshgrid(ax_nodes, ax_nodes, indexing="ij")
        gx, gy = gx.ravel(), gy.ravel()
        inside = gx * gx + gy * gy <= r * r
        gx, gy = gx[inside], gy[inside]
        finals: list[tuple[int, float, float, float]] = []
        seeds = [(gx, gy, step)]
        for level in range(3):
            nxt = []
            for sx, sy, st in seeds:
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
            seeds = nxt
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
        by_id = {p.pulse_id: p for p in (self._pulses[j] for j in cand) if p is not None}
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

    def _passes_echo_rule(self, shot: ShotLocation, by_id: dict[str, Pulse]) -> bool:
        """Reject sets made mostly of pulses in the reverberation tail of recent shots (at the
        same sensors), unless the new shot is near one of them (another round from the same
        place) or is about as well supported as the shot whose tail it sits in."""
        if not self._recent:
            return True
        out = set(shot.outliers)
        used = [by_id[pid] for pid in shot.pulse_ids if pid not in out and pid in by_id]
        # A split of a shot just located (same place, same origin time) is not a new shot.
        for rec in self._recent:
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
        return len(used) >= max(2 * self.min_sensors, math.ceil(0.6 * biggest))

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
        h, n = self._head, self._n
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
        h, n = self._head, self._n
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
