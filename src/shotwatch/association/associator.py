"""Streaming association: pulses in arrival order -> located shots (ADR 0015).

A plain class fed one pulse at a time (SeisComP's ``scautoloc`` shape: ``feed`` and a clock
``flush``), holding *hypotheses*, candidate shots that grow as the sound reaches sensor after
sensor:

* **attach**: a new pulse that arrives where and when an open hypothesis predicts (its
  sensor not yet heard from, or heard only later) joins it and the hypothesis is re-fitted
  at once (:func:`shotwatch.location.quick.refine`), so the located shot is updated within
  the processing time of that pulse. A young hypothesis, resting on a few near sensors, may
  be off by more than a far sensor's window: a pulse a little outside it joins when a refit
  with it keeps every member inside.
* **nucleate**: otherwise the pulse, as the latest arrival of a possible new shot, is paired
  with the pulses of its nearest sensors: every pair of them with it is a closed-form triple
  (two hyperbolae, at most two sources, :func:`~shotwatch.association.geometry.triple_sources`)
  and each source counts the distinct sensors whose origin time agrees. The best-supported
  source with ``nucleation_support`` sensors (fewer where fewer sensors could check it)
  starts a hypothesis. Pulses already claimed by open hypotheses take part: hypotheses
  compete for pulses and the contest is settled when they become final, so an early wrong
  combination (echoes of one round with the next round's arrivals) cannot starve the right
  one. A new set that shares most of its pulses with an open hypothesis refines that one
  instead of doubling it.
* **finalize**: once every sensor that could still hear the shot has had the time to, the
  hypothesis takes its final members (per sensor the earliest pulse in the member window;
  later ones there are echoes), is located by the full robust solver
  (:func:`shotwatch.location.locate`) and must pass the evidence tests of
  :mod:`shotwatch.association.evidence`. Competing hypotheses become final in order of
  support, the stronger first; a final shot's pulses are no longer anyone else's.

Provisional states (hypotheses as they form and grow, then final or retracted) come from
:meth:`Associator.drain_provisional` for consoles that want to see a shot as it forms.

The clock is the data: "now" is the latest arrival fed, or the time given to ``flush``, so a
replay and the live path are one code path.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from shotwatch.association import evidence, kernels
from shotwatch.association.store import CLAIMED, FREE, SPENT, USED, PulseStore
from shotwatch.core.errors import InputError
from shotwatch.core.ids import stable_id
from shotwatch.core.model import Provenance, Pulse, Sensor, ShotLocation
from shotwatch.core.settings import Settings
from shotwatch.location.locate import locate
from shotwatch.location.quick import QuickFit, refine, warm_refine

ALGORITHM = "hypothesis-association"
VERSION = "2"

#: Position uncertainty (sigmas) turned into extra arrival-time slack for the attach test,
#: and the cap on that slack (seconds).
_SLACK_SIGMAS = 2.0
_SLACK_CAP_S = 0.03
#: A three-sensor shot stands only when no other sensor lies within this many times the
#: distance of its farthest member: it has no redundancy (chance pulses always fit).
_ALONE_FACTOR = 2.0
#: A pulse this far (s) from an open hypothesis's prediction may still join it if a refit
#: with it keeps every member in the window, while the hypothesis has fewer than _YOUNG.
_TRIAL_S = 0.15
_YOUNG = 8
#: Shots closer than this (m) are at the same place (another round from the same gun).
_SAME_PLACE_M = 25.0
#: ...and is another round only when it fits about as well as the rounds there (residual rms
#: within this factor of their median, or under the floor, s): a burst's echoes also seem to
#: come from its place, with residuals of milliseconds.
_SAME_PLACE_RMS_FACTOR = 3.0
_SAME_PLACE_RMS_FLOOR_S = 0.002
#: A set this close (m, s) to a final shot, heard mostly at other sensors, is a split of it.
_SPLIT_M = 60.0
_SPLIT_S = 0.2
#: Shortest lag (s) between two rounds that the repeat search looks for (1,500 rounds/min);
#: shorter lags are the shot's own reverberation.
_REPEAT_MIN_LAG_S = 0.04
#: Members a hypothesis needs before later arrivals at its sensors are tested as repeats.
_REPEAT_PARENT = 5
#: Hypotheses are refitted for every new member up to this size, then each time they have
#: grown by this factor (provisional positions; the final one is always a full fit).
_ALWAYS_REFIT = 12
_REGROWTH = 1.25
#: The buffer's old pulses are dropped at most this often (stream seconds).
_EXPIRE_EVERY_S = 0.5
#: Margin (m) beyond half again a hypothesis's farthest member where final members are sought.
_REACH_MARGIN_M = 500.0
#: Final and retracted provisional versions kept for drain_provisional() when nobody asks.
_MAX_UNDRAINED = 10_000
#: Votes a hypothesis keeps before those of pulses gone from the window are forgotten.
_MAX_VOTES = 256
#: Shortest span (s) over which a neighbour's pulse rate is counted for the chance floor.
_RATE_SPAN_S = 1.0
#: Most pulses (nearest sensors first) a new pulse is paired with when nucleating.
_MAX_PARTNERS = 24
#: Most later pulses a pulse delivered out of time order re-tries as the latest arrival.
_MAX_RETRY_ANCHORS = 8


_PAIRS: dict[int, tuple[NDArray[np.intp], NDArray[np.intp]]] = {}


def _pairs(n: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    got = _PAIRS.get(n)
    if got is None:
        got = np.triu_indices(n, 1)
        _PAIRS[n] = got
    return got


@dataclass
class AssociatorStats:
    """Counters, so that nothing is dropped silently."""

    pulses: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    attached: int = 0
    replaced: int = 0
    late_members: int = 0
    nucleation_tries: int = 0
    hypotheses: int = 0
    refined: int = 0
    shots: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    unassociated: int = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


@dataclass
class Hypothesis:
    """A candidate shot: its members (sensor index -> pulse handle) and current fit."""

    slot: int
    key: str
    members: dict[int, int]
    fit: QuickFit
    close_s: float = math.inf
    revision: int = 0
    final: ShotLocation | None = None
    hold_until_s: float = 0.0
    fitted_n: int = 0
    judged_n: int = 0
    plausible: bool = False
    shown: bool = False
    #: a repeat of another hypothesis (another round from the same place): its slot and key,
    #: and the lag of this one's arrivals behind it at every sensor both heard
    parent: tuple[int, str] | None = None
    lag_s: float = 0.0
    #: lags behind this hypothesis of later pulses at its sensors: (lag, sensor, handle, time),
    #: sorted by lag, and the handles among them
    votes: list[tuple[float, int, int, float]] = field(default_factory=list)
    vote_handles: set[int] = field(default_factory=set)
    #: members it needs before later pulses at its sensors are tested as its repeats: fewer
    #: where fewer sensors lie around it (a sparse network)
    parent_need: int = _REPEAT_PARENT
    #: the member reach worked out for (this fit, this many members)
    reach: tuple[QuickFit | None, int, float] = (None, -1, 0.0)


@dataclass(frozen=True, slots=True)
class _Probe:
    """A nucleation attempt: the anchor pulse, its sensor's neighbour rows and the buffer
    rows before it (time, sensor, owner, gap since the sensor's previous pulse)."""

    handle: int
    sensor: int
    t: float
    rank: NDArray[np.int16]
    dist: NDArray[np.float32]
    ts: NDArray[np.float64]
    ss: NDArray[np.int64]
    owner: NDArray[np.int64]
    gap: NDArray[np.float64]


@dataclass(frozen=True)
class ProvisionalShot:
    """A hypothesis as it stands: ``key`` is stable over its revisions; ``final`` is set on the
    revision that became a shot, ``retracted`` when it was rejected."""

    key: str
    revision: int
    shot: ShotLocation
    final: bool = False
    retracted: bool = False
    #: it passes the evidence tests as it stands (what a console may show before the shot is
    #: final); always True for a final one
    plausible: bool = False


class Associator:
    """Feed pulses in arrival order; get located shots back as they become final."""

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
        self.min_sensors = max(a.min_sensors, 3)
        self.reach_m = a.max_station_distance_m
        self.tol_s = a.pick_tolerance_s
        self.rel = a.propagation_error
        self.early_s = a.early_tolerance_s
        self.late_s = a.late_tolerance_s
        self.nb_k = a.nucleation_neighbours
        self.nuc_support = max(a.nucleation_support, self.min_sensors)
        self.nuc_alpha = a.nucleation_false_alarm
        self.onset_gap_s = a.onset_gap_s
        self.rep_tol_s = a.repeat_tolerance_s
        self.rep_support = max(a.repeat_support, self.min_sensors)
        self.rep_max_lag_s = a.echo_tail_s
        self.batch_s = a.batch_s
        self.window_s = a.window_s
        self.pick_sigma_s = self.settings.location.pick_sigma_s
        self.stats = AssociatorStats()
        self.unassociated_ids: list[str] = []
        #: set to a list to record each hypothesis's life (diagnostics only)
        self.trace: list[str] | None = None
        # sensors
        self._sidx: dict[str, int] = {}
        self._sx = np.zeros(0)
        self._sy = np.zeros(0)
        self._sz = np.zeros(0)
        self._sensor_objs: list[Sensor] = []
        # per sensor, built on first use: neighbour ranks (int16) and distances (float32), so
        # a 2,000-sensor city costs 24 MB
        self._rank_rows: dict[int, tuple[NDArray[np.int16], NDArray[np.float32], float]] = {}
        self._nb_dist: dict[int, NDArray[np.float32]] = {}
        for s in sensors or ():
            self._add_sensor(s.serial, s.x_m, s.y_m, s.z_m, s)
        # pulses
        self.store = PulseStore()
        self._seen: dict[tuple[int, float], int] = {}
        self._claims: dict[int, set[int]] = {}
        self._at_sensor: dict[int, set[int]] = {}  # sensor -> slots with a member there
        self._children: dict[int, set[int]] = {}  # slot -> slots of its repeats
        self._pending: list[int] = []
        self._now = -math.inf
        self._done_t = -math.inf  # the latest arrival time handled so far
        # hypotheses: objects plus numpy columns for the vectorised attach test
        self._hyps: dict[int, Hypothesis] = {}
        self._free_slots: list[int] = []
        cap = 64
        self._hx = np.zeros(cap)
        self._hy = np.zeros(cap)
        self._hz = np.zeros(cap)
        self._ht0 = np.full(cap, -np.inf)
        self._hslack = np.zeros(cap)
        self._hlive = np.zeros(cap, dtype=bool)  # open, or final and absorbing late members
        self._finals: list[ShotLocation] = []
        self._provisional: dict[str, ProvisionalShot] = {}
        self._changed: set[int] = set()
        self._next_due = math.inf  # earliest time a hypothesis is due or a final expires
        kernels.warm_up()
        warm_refine()
        for i in range(len(self._sidx)):
            self._neighbours(i)
        self._last_expire = -math.inf

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
        self._rank_rows.clear()
        self._nb_dist.clear()
        return i

    def _neighbours(self, si: int) -> tuple[NDArray[np.int16], NDArray[np.float32], float]:
        """For sensor ``si``: each sensor's rank among its ``nucleation_neighbours`` nearest
        within twice the reach (-1 for the rest), distances to all, and the farthest
        neighbour's distance."""
        row = self._rank_rows.get(si)
        if row is None:
            d = np.sqrt(
                (self._sx - self._sx[si]) ** 2
                + (self._sy - self._sy[si]) ** 2
                + (self._sz - self._sz[si]) ** 2
            )
            k = min(self.nb_k + 1, len(d))
            first = np.argpartition(d, k - 1)[:k] if k < len(d) else np.arange(len(d))
            first = first[np.argsort(d[first], kind="stable")]
            near = first[(first != si) & (d[first] <= 2.0 * self.reach_m)][: self.nb_k]
            rank = np.full(len(d), -1, dtype=np.int16)
            rank[near] = np.arange(len(near))
            far = float(d[near].max()) if len(near) else 0.0
            row = (rank, d.astype(np.float32), far)
            self._rank_rows[si] = row
        return row

    # ------------------------------------------------------------------ feeding
    def feed(self, pulse: Pulse) -> list[ShotLocation]:
        """Add one pulse; return the shots that became final."""
        self.stats.pulses += 1
        si = self._add_sensor(pulse.sensor, pulse.x_m, pulse.y_m, pulse.z_m)
        key = (si, round(pulse.t_s, 6))
        if key in self._seen:
            self.stats.duplicates += 1
            return []
        level = pulse.level_db_spl if math.isfinite(pulse.level_db_spl) else math.nan
        h, late = self.store.add(pulse, si, level)
        self._seen[key] = h
        if late:
            self.stats.out_of_order += 1
        self._pending.append(h)
        self._now = max(self._now, pulse.t_s)
        first = self.store.t[self.store.pos(self._pending[0])]
        if self._now - first >= self.batch_s:
            self._process(self._now)
        return self._take_finals()

    def flush(self, until_s: float | None = None) -> list[ShotLocation]:
        """Let time pass to ``until_s`` (default: the end of input) and return what became
        final by then."""
        now = math.inf if until_s is None else max(float(until_s), self._now)
        self._process(now)
        return self._take_finals()

    def drain_provisional(self) -> list[ProvisionalShot]:
        """Since the last call: every hypothesis created or grown that passes the evidence
        tests as it stands (what a console may show before the shot is final), and the final
        or retracted end of those shown. A hypothesis that has not (yet) passed is not shown."""
        if not self._changed and not self._provisional:
            return []
        out: list[ProvisionalShot] = []
        for slot in sorted(self._changed):
            hyp = self._hyps.get(slot)
            if hyp is None or hyp.final is not None or not self._plausible(hyp):
                continue
            hyp.shown = True
            out.append(
                ProvisionalShot(hyp.key, hyp.revision, self._provisional_shot(hyp), plausible=True)
            )
        self._changed.clear()
        out.extend(self._provisional.values())
        self._provisional.clear()
        return out

    def _plausible(self, hyp: Hypothesis) -> bool:
        """Would the hypothesis pass the evidence tests as it stands? Once it has, it stays
        shown until final or retracted; one that has not is judged again when it has grown
        by half (the verdict rarely changes in between)."""
        n = len(hyp.members)
        if hyp.plausible:
            return True
        if n < self.nuc_support:
            return False
        if hyp.judged_n and n < max(hyp.judged_n + 2, 1.5 * hyp.judged_n):
            return False
        hyp.judged_n = n
        hyp.plausible = not self._judge(hyp, self._provisional_shot(hyp))
        return hyp.plausible

    @property
    def open_hypotheses(self) -> int:
        return sum(1 for h in self._hyps.values() if h.final is None)

    def _take_finals(self) -> list[ShotLocation]:
        out, self._finals = self._finals, []
        return sorted(out, key=lambda s: s.t0_s)

    # ------------------------------------------------------------------ processing
    def _process(self, now: float) -> None:
        """Handle the waiting pulses in time order; before each, the hypotheses due by its
        time become final, so that where the clock ticks (or how pulses are batched) changes
        when shots come out, never which."""
        pending, self._pending = self._pending, []
        st = self.store
        if len(pending) > 1:
            pending.sort(key=lambda h: st.t[st.pos(h)])
        for h in pending:
            t = float(st.t[st.pos(h)])
            if t >= self._next_due:
                self._finalize_due(t)
            late, self._done_t = t < self._done_t, max(self._done_t, t)
            if self._attach_repeat(h) or self._attach(h) or self._vote_repeat(h):
                continue
            self._nucleate(h)
            if late and st.owner[st.pos(h)] == FREE:
                self._retry_later_anchors(h)
        self._finalize_due(now)
        self._expire(now)

    # .................................................................. claims
    def _claim(self, hyp: Hypothesis, handle: int) -> None:
        self._claims.setdefault(handle, set()).add(hyp.slot)
        self.store.owner[self.store.pos(handle)] = CLAIMED

    def _unclaim(self, hyp: Hypothesis, handle: int) -> None:
        holders = self._claims.get(handle)
        if holders is None:
            return
        holders.discard(hyp.slot)
        if not holders:
            del self._claims[handle]
            row = self.store.pos(handle)
            if self.store.owner[row] == CLAIMED:
                self.store.owner[row] = FREE

    def _set_members(
        self, hyp: Hypothesis, members: dict[int, int], *, backfill: bool = True
    ) -> None:
        """Change a hypothesis's members (claims and the per-sensor index follow). With
        ``backfill``, pulses already in the buffer after a new member's arrival are tested as
        repeats of it; a pulse joining as it arrives is the newest at its sensor, so there is
        nothing to test."""
        old = set(hyp.members.values())
        new = set(members.values())
        for h in old - new:
            self._unclaim(hyp, h)
        for h in new - old:
            self._claim(hyp, h)
        for si in hyp.members.keys() - members.keys():
            self._at_sensor.get(si, set()).discard(hyp.slot)
        added = members.keys() - hyp.members.keys()
        for si in added:
            self._at_sensor.setdefault(si, set()).add(hyp.slot)
        grew_up = len(hyp.members) < hyp.parent_need <= len(members)
        hyp.members = dict(members)
        if (
            hyp.final is None
            and len(members) >= hyp.parent_need
            and (grew_up or (backfill and added))
        ):
            self._backfill_votes(hyp, list(members) if grew_up else added)

    # .................................................................. attach
    def _attach(self, handle: int) -> bool:
        st = self.store
        row = st.pos(handle)
        if st.owner[row] != FREE:
            return True
        si = int(st.s[row])
        t = float(st.t[row])
        cand, strict = kernels.attach_candidates(
            float(self._sx[si]),
            float(self._sy[si]),
            float(self._sz[si]),
            t,
            self._hx,
            self._hy,
            self._hz,
            self._ht0,
            self._hslack,
            self._hlive,
            self.c,
            self.early_s,
            self.late_s,
            self.rel,
            _TRIAL_S,
            self.reach_m,
        )
        if len(cand) == 0:
            return False
        for k in range(len(cand)):
            hyp = self._hyps[int(cand[k])]
            old = hyp.members.get(si)
            if old is not None and st.t[st.pos(old)] <= t:
                # the sensor already gave this shot an earlier arrival: this one is later on
                # the same sensor (an echo, or the next round)
                continue
            if hyp.final is not None:
                # a later arrival of a final shot, from no farther than its final members
                # were looked for (a shot heard to 600 m does not take a pulse at 2 km, which
                # belongs to another shot there)
                if old is None and strict[k] and self._within_reach(hyp, si):
                    st.owner[row] = USED
                    self.stats.late_members += 1
                    return True
                continue
            if not strict[k] and (
                len(hyp.members) >= _YOUNG or not self._stretches(hyp, si, handle)
            ):
                continue
            if not self._within_reach(hyp, si):
                continue
            members = dict(hyp.members)
            members[si] = handle
            if old is not None:
                self.stats.replaced += 1
            self._set_members(hyp, members, backfill=False)
            if old is not None and old not in self._claims:
                # an earlier arrival replaced it: the later pulse was an echo of this shot
                st.owner[st.pos(old)] = SPENT
            self.stats.attached += 1
            self._refit(hyp)
            return True
        return False

    def _stretches(self, hyp: Hypothesis, si: int, handle: int) -> bool:
        """Would the hypothesis, refitted with this pulse, still hold every member (and this
        one) inside the member window?"""
        members = dict(hyp.members)
        members[si] = handle
        fit = self._fit_members(members, hyp.fit.x_m, hyp.fit.y_m)
        r = fit.residuals_s
        return bool(np.all((r >= -self.early_s) & (r <= self.late_s)))

    # .................................................................. repeats
    def _parent_of(self, hyp: Hypothesis) -> Hypothesis | None:
        if hyp.parent is None:
            return None
        p = self._hyps.get(hyp.parent[0])
        return p if p is not None and p.key == hyp.parent[1] else None

    def _template(self, parent: Hypothesis, si: int) -> float | None:
        """Arrival time of the parent's member at sensor ``si``, if any."""
        h = parent.members.get(si)
        return None if h is None else float(self.store.t[self.store.pos(h)])

    def _attach_repeat(self, handle: int) -> bool:
        """Join a repeat hypothesis where this sensor's arrival is the parent's, lagged: the
        two rounds share every path, so the lag is the same at every sensor to the pick
        error, however far the paths are from straight lines."""
        st = self.store
        row = st.pos(handle)
        if st.owner[row] != FREE:
            return True
        si = int(st.s[row])
        t = float(st.t[row])
        best: tuple[float, Hypothesis] | None = None
        for pslot in self._at_sensor.get(si, ()):
            kids = self._children.get(pslot)
            if not kids:
                continue
            parent = self._hyps[pslot]
            a_t = self._template(parent, si)
            if a_t is None:
                continue
            for cslot in kids:
                child = self._hyps.get(cslot)
                if child is None or child.final is not None or child.parent != (pslot, parent.key):
                    continue
                r = abs(t - a_t - child.lag_s)
                old = child.members.get(si)
                if r > self.rep_tol_s or (old is not None and st.t[st.pos(old)] <= t):
                    continue
                if best is None or r < best[0]:
                    best = (r, child)
        if best is None:
            return False
        child = best[1]
        members = dict(child.members)
        members[si] = handle
        self._set_members(child, members)
        self.stats.attached += 1
        self._refit(child)
        return True

    def _vote_repeat(self, handle: int) -> bool:
        """Is this pulse, with others at the same lag behind one hypothesis's arrivals, a
        repeat of it (another round from the same place)? Returns True when it joined one."""
        st = self.store
        row = st.pos(handle)
        si = int(st.s[row])
        t = float(st.t[row])
        at = self._at_sensor.get(si)
        if not at:
            return False
        for pslot in sorted(at) if len(at) > 1 else at:
            parent = self._hyps.get(pslot)
            if parent is None or len(parent.members) < parent.parent_need:
                continue
            a_t = self._template(parent, si)
            if a_t is None:
                continue
            lag = t - a_t
            if _REPEAT_MIN_LAG_S <= lag <= self.rep_max_lag_s:
                self._add_votes(parent, [(lag, si, handle, t)])
                if st.owner[row] != FREE:
                    return True
        return False

    def _backfill_votes(self, parent: Hypothesis, sensors: Iterable[int]) -> None:
        """Pulses already in the buffer after the parent's arrivals at these sensors vote
        too: the first rounds of rapid fire often arrive before their first round is known.
        So do those before them (negative lags): an earlier round from the same place that
        too few sensors heard cleanly to start on its own is found behind a later one.

        One pass over the buffer span of all the sensors' windows (each row's lag behind its
        own sensor's arrival), votes ordered by sensor as given, forward before backward,
        then by time."""
        st = self.store
        order: list[int] = []
        arrival: list[float] = []
        for si in sensors:
            a_t = self._template(parent, si)
            if a_t is not None:
                order.append(si)
                arrival.append(a_t)
        if not order:
            return
        span = self.rep_max_lag_s
        a, b = st.window(min(arrival) - span, max(arrival) + span)
        if b <= a:
            return
        ss = st.s[a:b]
        if len(order) == 1:  # a pulse joining one at a time: no lookup needed
            lag = np.where(ss == order[0], st.t[a:b] - arrival[0], np.nan)
        else:  # each row's sensor looked up among the asked ones (dozens of thousands)
            asked = np.asarray(order, dtype=np.int64)
            by_id = np.argsort(asked)
            k = np.minimum(np.searchsorted(asked[by_id], ss), len(asked) - 1)
            rank = by_id[k]  # position in the asked order
            known = asked[rank] == ss
            lag = np.where(known, st.t[a:b] - np.asarray(arrival)[rank], np.nan)
        # NaN for sensors not asked about: no comparison below holds for them
        own = st.owner[a:b]
        free = own == FREE
        fwd = (lag >= _REPEAT_MIN_LAG_S) & (lag <= span) & (free | (own == CLAIMED))
        # earlier rounds that were found hold their pulses: only free ones vote back
        bwd = (lag <= -_REPEAT_MIN_LAG_S) & (lag >= -span) & free
        if len(order) == 1:
            hit = np.concatenate((np.flatnonzero(fwd), np.flatnonzero(bwd)))
        else:
            hit = np.flatnonzero(fwd | bwd)
            hit = hit[np.lexsort((hit, bwd[hit], rank[hit]))]
        if len(hit) == 0:
            return
        rows = a + hit
        new = list(
            zip(
                lag[hit].tolist(),
                ss[hit].tolist(),
                st.handle[rows].tolist(),
                st.t[rows].tolist(),
                strict=True,
            )
        )
        self._add_votes(parent, new)

    def _add_votes(self, parent: Hypothesis, new: list[tuple[float, int, int, float]]) -> None:
        """Record lags behind ``parent`` (kept sorted by lag); every lag that now holds
        ``repeat_support`` sensors starts a repeat of it."""
        st = self.store
        votes = parent.votes
        if len(votes) > _MAX_VOTES:  # forget the votes of pulses gone from the window
            horizon = self._now - self.rep_max_lag_s - 1.0
            votes[:] = [v for v in votes if v[3] >= horizon]
            parent.vote_handles = {v[2] for v in votes}
        fresh = [v for v in new if v[2] not in parent.vote_handles]
        for v in fresh:
            insort(votes, v)
            parent.vote_handles.add(v[2])
        mine = set(parent.members.values())
        tried: list[float] = []
        tol = self.rep_tol_s
        for lag, *_ in fresh:
            if any(abs(lag - x) <= tol for x in tried):
                continue
            tried.append(lag)
            lo = bisect_left(votes, (lag - tol,))
            hi = bisect_right(votes, (lag + tol, math.inf))
            need = min(self.rep_support, parent.parent_need)
            if len({v[1] for v in votes[lo:hi]}) < need:
                continue
            members: dict[int, tuple[float, int]] = {}
            for v_lag, v_si, v_h, _t in votes[lo:hi]:
                if v_h in mine or st.owner[st.pos(v_h)] not in (FREE, CLAIMED):
                    continue
                cur = members.get(v_si)
                if cur is None or abs(v_lag - lag) < abs(cur[0] - lag):
                    members[v_si] = (v_lag, v_h)
            if len(members) >= need:
                lags = [m[0] for m in members.values()]
                self._start_repeat(
                    parent, {k: m[1] for k, m in members.items()}, float(np.median(lags))
                )

    def _start_repeat(self, parent: Hypothesis, members: dict[int, int], lag: float) -> None:
        f = parent.fit
        t0 = f.t0_s + lag
        for other in self._hyps.values():
            g = other.fit
            if (
                other.final is None
                and abs(g.t0_s - t0) <= 2.0 * self.rep_tol_s
                and math.hypot(g.x_m - f.x_m, g.y_m - f.y_m) <= _SAME_PLACE_M
            ):
                # that round is already open (found from another parent or by nucleation)
                self._refine_with(other, members, g.x_m, g.y_m)
                return
        before = set(self._hyps)
        self._start(members, f.x_m, f.y_m)
        for slot in set(self._hyps) - before:
            hyp = self._hyps[slot]
            hyp.parent = (parent.slot, parent.key)
            hyp.lag_s = lag
            self._children.setdefault(parent.slot, set()).add(slot)
            if self.trace is not None:
                self.trace.append(f"repeat {hyp.key} of {parent.key} lag={lag:.3f}")

    # .................................................................. nucleate
    def _nucleate(self, handle: int) -> None:
        """Start a hypothesis with this pulse as the latest arrival, if its nearest sensors'
        earlier pulses make one (:func:`kernels.nucleation_search`). A pulse after a quiet
        spell on its sensor (the start of a burst) is first tried with other sensors' burst
        starts only: in rapid fire every sensor holds a pulse every few tens of milliseconds,
        and some mix of rounds lines up with some source, but the first round is each
        sensor's first pulse."""
        st = self.store
        row, si, t, rank, dist, far = self._anchor(handle)
        if far <= 0.0:
            return
        a, _ = st.window(t - max(far / self.c * (1.0 + self.rel) + self.tol_s, _RATE_SPAN_S), t)
        if row - a < 2:
            return
        self.stats.nucleation_tries += 1
        probe = _Probe(
            handle, si, t, rank, dist, st.t[a:row], st.s[a:row], st.owner[a:row], st.gap[a:row]
        )
        # a burst start is tried with other burst starts first, then (if pulses inside bursts
        # could change the answer) with everything, in one search
        self._try(probe, mode=3 if st.gap[row] >= self.onset_gap_s else 0)

    def _anchor(
        self, handle: int
    ) -> tuple[int, int, float, NDArray[np.int16], NDArray[np.float32], float]:
        """A pulse as a search anchor: its buffer row, sensor, time, and the sensor's
        neighbour ranks, distances and farthest neighbour (:meth:`_neighbours`)."""
        row = self.store.pos(handle)
        si = int(self.store.s[row])
        return (row, si, float(self.store.t[row]), *self._neighbours(si))

    def _retry_later_anchors(self, handle: int) -> None:
        """A pulse delivered after later arrivals (the network reorders reports) is no shot's
        latest arrival, yet its shot's latest arrival was already tried without it, and
        failed if it was needed (a shot heard by three or four sensors). So the free pulses
        after it at its neighbour sensors, within the longest travel time between them, are
        tried again as the latest arrival, newest first, until one starts a shot with it."""
        st = self.store
        row, _, t, rank, _, far = self._anchor(handle)
        if far <= 0.0:
            return
        a, b = st.window(t, t + far / self.c * (1.0 + self.rel) + self.tol_s)
        ok = (st.owner[a:b] == FREE) & (rank[st.s[a:b]] >= 0)
        ok[row - a] = False  # the late pulse itself (the window starts at its time)
        later = st.handle[a:b][ok][::-1][:_MAX_RETRY_ANCHORS].tolist()
        for anchor in later:
            if st.owner[st.pos(anchor)] != FREE:
                continue  # joined a shot started by an earlier retry
            self._nucleate(anchor)
            if st.owner[st.pos(handle)] != FREE:
                return

    def _try(self, probe: _Probe, *, mode: int) -> tuple[bool, int]:
        """One search (``mode`` as :func:`kernels.nucleation_search`); returns whether it
        started (or refined) a hypothesis, and how many partner pulses sat inside bursts."""
        handle, si, t, ts = probe.handle, probe.sensor, probe.t, probe.ts
        sources, support, members, n_partners, need, inside, _ = kernels.nucleation_search(
            t,
            si,
            self._sx,
            self._sy,
            probe.rank,
            probe.dist,
            len(self._neighbour_distances(si)),
            ts,
            probe.ss,
            probe.owner,
            probe.gap,
            mode,
            self.onset_gap_s,
            self.c,
            self.tol_s,
            self.rel,
            self.reach_m,
            _RATE_SPAN_S,
            self.nuc_alpha,
            _MAX_PARTNERS,
        )
        sup_list = support.tolist()
        if n_partners < 2 or sup_list[0] < self.min_sensors:
            return False, int(inside)
        needs = [max(k, self.nuc_support) for k in need.tolist()]
        nb_d = self._neighbour_distances(si)
        checkers = -1
        base = self.store.pos(handle) - len(ts)  # buffer row of ts[0]
        ax, ay = float(self._sx[si]), float(self._sy[si])
        for q, sup in enumerate(sup_list):
            if sup < self.min_sensors:
                break
            need_q = needs[q]
            dx, dy = float(sources[q, 0]), float(sources[q, 1])
            # Enough sensors to check a source with too few sensors lie near it when even the
            # anchor has ``sup`` neighbours nearer than the source is to it (they are within
            # twice that of the source); else count them below (once per search: the
            # sources are close together).
            if sup < need_q and len(nb_d) >= sup and math.hypot(dx, dy) >= nb_d[sup - 1]:
                continue
            x, y = dx + ax, dy + ay
            rows_q = members[q][members[q] >= 0]
            group = self.store.s[base + rows_q]
            if sup < need_q:
                if checkers < 0:
                    checkers = self._checkers(x, y, group)
                if sup < checkers:
                    continue
            chosen = {si: handle}
            for r in rows_q.tolist():
                chosen[int(self.store.s[base + r])] = int(self.store.handle[base + r])
            if len(chosen) < 4 and not self._alone(x, y, chosen):
                continue
            self._start(chosen, x, y)
            return True, int(inside)
        return False, int(inside)

    def _neighbour_distances(self, si: int) -> NDArray[np.float32]:
        """Distances of sensor ``si``'s nucleation neighbours, nearest first."""
        got = self._nb_dist.get(si)
        if got is None:
            rank, dist, _ = self._neighbours(si)
            got = np.sort(dist[rank >= 0])
            self._nb_dist[si] = got
        return got

    def _checkers(self, x: float, y: float, supporting: NDArray[np.int64]) -> int:
        """How many sensors could check a source at (x, y): all within twice the farthest
        supporting sensor's distance. A sparse network cannot offer ``nucleation_support``."""
        r = kernels.max_distance(self._sx, self._sy, supporting, x, y)
        return int(kernels.count_within(self._sx, self._sy, x, y, _ALONE_FACTOR * max(r, 1.0)))

    def _alone(self, x: float, y: float, sensors: Iterable[int]) -> bool:
        """A three-sensor set fits exactly whatever its pulses are: it stands only where no
        other sensor could check it (none within twice the farthest member's distance)."""
        idx = np.fromiter(sensors, dtype=np.int64)
        d = np.hypot(self._sx - x, self._sy - y)
        r = float(d[idx].max())
        others = np.ones(len(d), dtype=bool)
        others[idx] = False
        return not bool(np.any(d[others] <= _ALONE_FACTOR * r))

    def _start(self, members: dict[int, int], x: float, y: float) -> None:
        """A new hypothesis, or a better version of an open one it mostly repeats."""
        counts: dict[int, int] = {}
        for h in members.values():
            for slot in self._claims.get(h, ()):
                counts[slot] = counts.get(slot, 0) + 1
        if counts:
            slot, overlap = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))
            hyp = self._hyps[slot]
            if hyp.final is None and overlap >= max(3, (len(members) + 1) // 2):
                self._refine_with(hyp, members, x, y)
                return
        fit = self._fit_members(members, x, y)
        slot = self._free_slots.pop() if self._free_slots else len(self._hyps)
        while slot in self._hyps:
            slot += 1
        if slot >= len(self._hx):
            self._grow_slots(slot + 1)
        names = sorted(self.store.pulse(h).pulse_id for h in members.values())
        hyp = Hypothesis(slot, stable_id("shot", tuple(names)), {}, fit)
        idx = np.fromiter(members.keys(), dtype=np.int64)
        around = self._checkers(fit.x_m, fit.y_m, idx)
        hyp.parent_need = min(_REPEAT_PARENT, max(self.min_sensors, around))
        self._hyps[slot] = hyp
        self._set_members(hyp, members)
        self.stats.hypotheses += 1
        self._publish(hyp)
        if self.trace is not None:
            self.trace.append(f"nucleate {hyp.key} {self._describe(hyp)}")
        self._backfill(hyp)

    def _refine_with(self, hyp: Hypothesis, members: dict[int, int], x: float, y: float) -> None:
        """A new set mostly made of an open hypothesis's pulses: keep whichever version holds
        more sensors inside the member window."""
        merged = dict(members)
        for s, h in hyp.members.items():
            merged.setdefault(s, h)
        fit = self._fit_members(merged, x, y)
        r = fit.residuals_s
        inside = (r >= -self.early_s) & (r <= self.late_s)
        keep = {s: h for (s, h), ok in zip(merged.items(), inside, strict=True) if ok}
        fit_old = hyp.fit.residuals_s
        n_old = int(np.count_nonzero((fit_old >= -self.early_s) & (fit_old <= self.late_s)))
        if len(keep) <= n_old:
            return
        self._set_members(hyp, keep)
        hyp.fit = self._fit_members(keep, fit.x_m, fit.y_m)
        hyp.revision += 1
        self.stats.refined += 1
        self._publish(hyp)
        if self.trace is not None:
            self.trace.append(f"refine {hyp.key} {self._describe(hyp)}")

    def _grow_slots(self, need: int) -> None:
        cap = len(self._hx)
        while cap < need:
            cap *= 2
        for name in ("_hx", "_hy", "_hz", "_hslack"):
            old = getattr(self, name)
            new = np.zeros(cap)
            new[: len(old)] = old
            setattr(self, name, new)
        t0 = np.full(cap, -np.inf)
        t0[: len(self._ht0)] = self._ht0
        self._ht0 = t0
        live = np.zeros(cap, dtype=bool)
        live[: len(self._hlive)] = self._hlive
        self._hlive = live

    def _backfill(self, hyp: Hypothesis) -> None:
        """Free pulses that arrived before the hypothesis existed but fit it (sensors beyond
        the anchor's neighbours, or ones the triple search did not pair) join it now."""
        st = self.store
        f = hyp.fit
        a, b = st.window(f.t0_s - self.early_s, min(self._now, f.t0_s + self._wait_s()))
        if b <= a:
            return
        free = np.flatnonzero(st.owner[a:b] == FREE)
        if len(free) == 0:
            return
        rows = a + free
        ss = st.s[rows]
        d = np.sqrt(
            (self._sx[ss] - f.x_m) ** 2 + (self._sy[ss] - f.y_m) ** 2 + (self._sz[ss] - f.z_m) ** 2
        )
        r = st.t[rows] - f.t0_s - d / self.c
        ok = (r >= -self.early_s) & (r <= self.late_s) & (d <= self.reach_m)
        members = dict(hyp.members)
        for j in np.flatnonzero(ok):  # time order: the earliest per sensor wins
            members.setdefault(int(ss[j]), int(st.handle[rows[j]]))
        if len(members) > len(hyp.members):
            self._set_members(hyp, members)
            self._refit(hyp)

    # .................................................................. fitting
    def _member_arrays(
        self, members: dict[int, int]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        idx = np.fromiter(members.keys(), dtype=np.int64)
        rows = self.store.rows(np.fromiter(members.values(), dtype=np.int64))
        pos = np.column_stack((self._sx[idx], self._sy[idx], self._sz[idx]))
        return pos, self.store.t[rows]

    def _fit_members(
        self,
        members: dict[int, int],
        x: float,
        y: float,
        *,
        t0: float | None = None,
        iterations: int = 6,
    ) -> QuickFit:
        pos, t = self._member_arrays(members)
        zs = pos[:, 2]
        return refine(
            pos,
            t,
            self.c,
            x,
            y,
            z_m=float(np.partition(zs, len(zs) // 2)[len(zs) // 2]),
            sigma_s=self.pick_sigma_s,
            late_s=self.tol_s,
            early_s=self.tol_s,
            iterations=iterations,
            t0_start=t0,
        )

    def _refit(self, hyp: Hypothesis) -> None:
        # One more member moves a fitted source a little: a few steps from where it was. A
        # large set hardly moves for one more: it is refitted each time it grew by a quarter.
        f = hyp.fit
        n = len(hyp.members)
        if n < _ALWAYS_REFIT or n >= _REGROWTH * hyp.fitted_n:
            hyp.fit = self._fit_members(hyp.members, f.x_m, f.y_m, t0=f.t0_s, iterations=3)
            hyp.fitted_n = n
        hyp.revision += 1
        self._publish(hyp)

    def _publish(self, hyp: Hypothesis) -> None:
        """Write the hypothesis's fit into the columns the attach test reads."""
        f = hyp.fit
        s = hyp.slot
        self._hx[s], self._hy[s], self._hz[s], self._ht0[s] = f.x_m, f.y_m, f.z_m, f.t0_s
        # the fit's own scatter, not just the pick sigma, says how far off its position may be
        r = f.residuals_s
        scale = 1.0
        if len(r) > 3:
            dev = np.abs(r - np.partition(r, len(r) // 2)[len(r) // 2])
            mad = 1.4826 * float(np.partition(dev, len(dev) // 2)[len(dev) // 2])
            scale = max(1.0, mad / self.pick_sigma_s)
        self._hslack[s] = min(_SLACK_SIGMAS * scale * f.sigma_xy_m / self.c, _SLACK_CAP_S)
        self._hlive[s] = True
        hyp.close_s = f.t0_s + self._wait_s()
        self._next_due = min(self._next_due, hyp.close_s)
        self._changed.add(s)

    def _wait_s(self) -> float:
        """How long after a shot's origin time its last arrival may still come: the farthest
        sensor that could hear it (reach) plus the late window."""
        return min(self.reach_m / self.c + self.late_s, self.window_s)

    def _support(self, hyp: Hypothesis) -> tuple[int, int, float]:
        """Ordering key of competing hypotheses: more members first; then more members that
        are the first pulse of their sensor for a while (echoes follow a louder sound at the
        same sensor); then the tighter fit."""
        st = self.store
        firsts = sum(
            1
            for h in hyp.members.values()
            if st.gap[st.pos(h)] >= self.settings.association.echo_tail_s
        )
        r = hyp.fit.residuals_s
        return (len(hyp.members), firsts, -float(np.sqrt(np.mean(r * r))) if len(r) else 0.0)

    # .................................................................. finalize
    def _finalize_due(self, now: float) -> None:
        if now < self._next_due:
            return
        while True:
            due = [h for h in self._hyps.values() if h.final is None and h.close_s <= now]
            if not due:
                break
            # the strongest due hypothesis first; one that shares pulses with a stronger
            # open one waits for it
            due.sort(key=self._support, reverse=True)
            hyp = due[0]
            rival = self._stronger_rival(hyp)
            if rival is not None and rival.close_s > now:
                hyp.close_s = rival.close_s
                self._next_due = min(self._next_due, hyp.close_s)
                continue
            self._finalize(hyp, now)
        for hyp in [h for h in self._hyps.values() if h.final is not None]:
            if hyp.hold_until_s <= now:
                self._drop(hyp)
        self._next_due = min(
            (h.close_s if h.final is None else h.hold_until_s for h in self._hyps.values()),
            default=math.inf,
        )

    def _stronger_rival(self, hyp: Hypothesis) -> Hypothesis | None:
        mine = self._support(hyp)
        best: Hypothesis | None = None
        for h in hyp.members.values():
            for slot in self._claims.get(h, ()):
                other = self._hyps[slot]
                if other is hyp or other.final is not None:
                    continue
                if self._support(other) > mine and (
                    best is None or self._support(other) > self._support(best)
                ):
                    best = other
        return best

    def _finalize(self, hyp: Hypothesis, now: float) -> None:
        """Final members, evidence, location. The evidence is first weighed on the quick fit
        (most hypotheses that fail, fail there, at a fraction of the full solver's cost),
        then once more on the full solution."""
        st = self.store
        created = now if math.isfinite(now) else self._now
        verdict = ""
        shot: ShotLocation | None = None
        if hyp.judged_n and hyp.judged_n == len(hyp.members) and not hyp.plausible:
            # judged as it stands since its last member (a console asked): a refresh of its
            # members rarely saves it; judge it once more on that before paying for one
            verdict = self._judge(hyp, self._provisional_shot(hyp))
        for _ in range(0 if verdict else 3):
            members = self._final_members(hyp)
            if len(members) < self.min_sensors:
                verdict = "too_few_sensors"
                break
            same = set(members.values()) == set(hyp.members.values())
            self._set_members(hyp, members)
            f = hyp.fit
            hyp.fit = self._fit_members(members, f.x_m, f.y_m, t0=f.t0_s)
            hyp.fitted_n = len(members)
            if same:
                break
        if not verdict:
            verdict = self._judge(hyp, self._provisional_shot(hyp))
        if not verdict:
            for _ in range(3):
                shot = locate(
                    [st.pulse(h) for h in hyp.members.values()],
                    c_mps=self.c,
                    dims=self.dims,
                    settings=self.settings.location,
                    created_s=created,
                    start_xy=(hyp.fit.x_m, hyp.fit.y_m),
                )
                if shot is None:
                    verdict = "unlocatable"
                    break
                self._adopt(hyp, dict(hyp.members), shot)
                members = self._final_members(hyp)
                if len(members) < self.min_sensors:
                    verdict = "too_few_sensors"
                    break
                if set(members.values()) == set(hyp.members.values()):
                    break
                self._set_members(hyp, members)
            if shot is not None and not verdict:
                verdict = self._judge(hyp, shot)
        if self.trace is not None:
            self.trace.append(f"finalize {hyp.key} {verdict or 'ACCEPT'} {self._describe(hyp)}")
        if verdict or shot is None:
            self.stats.reject(verdict or "unlocatable")
            self._retract(hyp)
            return
        shot = self._stamp(shot, hyp.key)
        hyp.final = shot
        # held while late members may still come and later rounds may still repeat it
        hyp.hold_until_s = shot.t0_s + self._wait_s() + self.rep_max_lag_s
        for h in hyp.members.values():
            for slot in list(self._claims.get(h, ())):
                other = self._hyps[slot]
                if other is not hyp:
                    self._set_members(other, {s: x for s, x in other.members.items() if x != h})
            self._claims.pop(h, None)
            st.owner[st.pos(h)] = USED
        self.stats.shots += 1
        self._finals.append(shot)
        self._provisional[hyp.key] = ProvisionalShot(
            hyp.key, hyp.revision + 1, shot, final=True, plausible=True
        )
        self._changed.discard(hyp.slot)

    def _final_members(self, hyp: Hypothesis) -> dict[int, int]:
        """Per sensor the earliest pulse not yet in a final shot inside the member window of
        the current fit; for a repeat, where the parent was heard, the pulse at its lag. In
        rapid fire the window never reaches half-way to the neighbouring rounds."""
        st = self.store
        f = hyp.fit
        early, late = self.early_s, self.late_s
        lags = [
            c.lag_s
            for slot in self._children.get(hyp.slot, ())
            if (c := self._hyps.get(slot)) is not None and c.parent == (hyp.slot, hyp.key)
        ]
        if hyp.parent is not None:
            lags.append(hyp.lag_s)
        if lags:
            half = 0.5 * min(abs(x) for x in lags)
            early, late = min(early, half), min(late, half)
        reach = self._member_reach_m(hyp)
        a, b = st.window(f.t0_s - early, f.t0_s + reach / self.c * (1.0 + self.rel) + late)
        if b <= a:
            return {}
        own = st.owner[a:b]
        rows = a + np.flatnonzero((own == FREE) | (own == CLAIMED))
        ss = st.s[rows]
        d = np.sqrt(
            (self._sx[ss] - f.x_m) ** 2 + (self._sy[ss] - f.y_m) ** 2 + (self._sz[ss] - f.z_m) ** 2
        )
        r = st.t[rows] - f.t0_s - d / self.c
        model = self.rel * d / self.c  # what the propagation model may be off on the path
        ok = (r >= -early - model) & (r <= late + model) & (d <= self.reach_m)
        # per sensor its earliest pulse in the window (rows are in time order)
        ss_ok = ss[ok]
        _, first = np.unique(ss_ok, return_index=True)
        first.sort()
        out: dict[int, int] = dict(
            zip(ss_ok[first].tolist(), st.handle[rows[ok][first]].tolist(), strict=True)
        )
        parent = self._parent_of(hyp)
        if parent is not None:
            # where the parent was heard, the arrival at its lag, not the geometric window
            tt = st.t[rows]
            for si, ph in parent.members.items():
                want = float(st.t[st.pos(ph)]) + hyp.lag_s
                k = np.flatnonzero((ss == si) & (np.abs(tt - want) <= self.rep_tol_s))
                if len(k):
                    best = int(k[np.argmin(np.abs(tt[k] - want))])
                    out[si] = int(st.handle[rows[best]])
        return out

    def _within_reach(self, hyp: Hypothesis, si: int) -> bool:
        f = hyp.fit
        fit, n, reach = hyp.reach
        if fit is not f or n != len(hyp.members):
            reach = self._member_reach_m(hyp)
            hyp.reach = (f, len(hyp.members), reach)
        return math.hypot(float(self._sx[si]) - f.x_m, float(self._sy[si]) - f.y_m) <= reach

    def _member_reach_m(self, hyp: Hypothesis) -> float:
        """How far from the source final members are looked for: half again the farthest
        sensor that joined it, plus a margin (a source heard to 600 m is not heard at 2 km),
        within ``max_station_distance_m``. Later arrivals still join the final shot."""
        f = hyp.fit
        idx = np.fromiter(hyp.members.keys(), dtype=np.int64)
        if len(idx) == 0:
            return self.reach_m
        d = np.sqrt((self._sx[idx] - f.x_m) ** 2 + (self._sy[idx] - f.y_m) ** 2)
        return min(self.reach_m, 1.5 * float(d.max()) + _REACH_MARGIN_M)

    def _adopt(self, hyp: Hypothesis, members: dict[int, int], shot: ShotLocation) -> None:
        self._set_members(hyp, members)
        pos, t = self._member_arrays(members)
        src = np.array([shot.x_m, shot.y_m, shot.z_m])
        resid = t - shot.t0_s - np.sqrt(np.sum((pos - src) ** 2, axis=1)) / self.c
        cov = (
            np.array(shot.covariance, dtype=float)[:2, :2]
            if shot.covariance is not None
            else np.eye(2)
        )
        hyp.fit = QuickFit(shot.x_m, shot.y_m, shot.z_m, shot.t0_s, resid, cov, True)

    def _judge(self, hyp: Hypothesis, shot: ShotLocation) -> str:
        """Empty when the shot stands; otherwise the name of the test it failed."""
        a_set = self.settings.association
        out = set(shot.outliers)
        heard = [
            self._sidx[s]
            for s, pid in zip(shot.sensors, shot.pulse_ids, strict=True)
            if pid not in out
        ]
        if len(heard) < self.min_sensors:
            return "too_few_inliers"
        if len(heard) < 4 and not self._alone(shot.x_m, shot.y_m, heard):
            return "unverifiable"
        st = self.store
        # the tests look at sensors out to the farthest that heard it, +-1 s around arrivals
        h = np.asarray(heard, dtype=np.int64)
        r_max = float(
            np.max(
                np.sqrt(
                    (self._sx[h] - shot.x_m) ** 2
                    + (self._sy[h] - shot.y_m) ** 2
                    + (self._sz[h] - shot.z_m) ** 2
                )
            )
        )
        a, b = st.window(shot.t0_s - 1.0, shot.t0_s + r_max / self.c + 1.0)
        own = st.owner[a:b]
        env = evidence.Neighbourhood(
            self._sx,
            self._sy,
            self._sz,
            st.t[a:b],
            st.s[a:b],
            self.c,
            in_shot=(own == USED) | (own == CLAIMED),
        )
        source = (shot.x_m, shot.y_m, shot.z_m, shot.t0_s)
        if not evidence.enough_heard(
            env,
            source,
            heard,
            early_s=self.early_s,
            silence_s=a_set.silence_window_s,
            min_fraction=a_set.min_heard_fraction,
            masked_s=a_set.masking_s,
        ):
            return "silent_neighbours"
        chance_heard, chance_window = heard, self._chance_window_s(shot, out)
        parent = self._parent_of(hyp)
        if parent is not None and len(parent.members) >= parent.parent_need:
            # a repeat is tested on its lag behind the parent, where the paths' own errors
            # cancel: only the sensors that hold the lag, in the repeat tolerance
            on_template = self._on_template(hyp, parent)
            if len(on_template) >= min(self.rep_support, parent.parent_need):
                chance_heard = on_template
                chance_window = 2.0 * self.rep_tol_s
        if not evidence.beats_chance(
            env,
            source,
            chance_heard,
            window_s=chance_window,
            z_sigma=a_set.significance_z,
        ):
            return "chance"
        mine = self._arrivals(hyp)
        finals = [o for o in self._hyps.values() if o is not hyp and o.final is not None]
        known_place: bool | None = None  # worked out only when a shot looks like an echo
        for other in finals:
            f = other.final
            assert f is not None
            if abs(f.t0_s - shot.t0_s) <= a_set.same_emission_s and self._later_everywhere(
                mine, self._arrivals(other)
            ):
                # heard at the same sensors, each time later: a reflection of that emission
                return "same_emission"
            n_other = len(other.members)
            if (
                f.t0_s < shot.t0_s <= f.t0_s + a_set.echo_tail_s
                and len(heard) < a_set.echo_support_ratio * n_other
                and evidence.echo_of(mine, self._arrivals(other), tail_s=a_set.echo_tail_s)
            ):
                if known_place is None:
                    known_place = self._known_place(shot, finals)
                if not known_place:  # else another round from a place that fired before
                    if self.trace is not None:
                        self.trace.append(f"echo of {other.key}: {len(heard)} vs {n_other} sensors")
                    return "echo"
            if (
                math.hypot(f.x_m - shot.x_m, f.y_m - shot.y_m) <= _SPLIT_M
                and abs(f.t0_s - shot.t0_s) <= _SPLIT_S
                and len(set(mine) & set(other.members)) <= 0.3 * len(mine)
            ):
                # mostly other sensors than a final shot next to it, almost at once: the rest
                # of that emission's arrivals, split off by a poor early fit
                return "split"
        return ""

    def _known_place(self, shot: ShotLocation, finals: list[Hypothesis]) -> bool:
        """Another round from where shots were already located is not anyone's echo, if it
        fits about as well as the rounds there: a burst's echoes seem to come from there too,
        with residuals of milliseconds."""
        there = [
            o.final.residual_rms_s for o in finals if o.final and self._same_place(o.final, shot)
        ]
        return bool(there) and shot.residual_rms_s <= max(
            _SAME_PLACE_RMS_FLOOR_S, _SAME_PLACE_RMS_FACTOR * float(np.median(there))
        )

    def _same_place(self, a: ShotLocation, b: ShotLocation) -> bool:
        apart = math.hypot(a.x_m - b.x_m, a.y_m - b.y_m)
        return apart <= max(_SAME_PLACE_M, 3.0 * max(a.uncertainty_m, b.uncertainty_m))

    @staticmethod
    def _later_everywhere(
        mine: dict[int, tuple[float, float]], other: dict[int, tuple[float, float]]
    ) -> bool:
        shared = [mine[s][0] - other[s][0] for s in mine.keys() & other.keys()]
        return len(shared) >= max(2, len(mine) / 2) and all(d > 0 for d in shared)

    def _on_template(self, hyp: Hypothesis, parent: Hypothesis) -> list[int]:
        st = self.store
        out = []
        for si, h in hyp.members.items():
            a_t = self._template(parent, si)
            if a_t is not None and abs(float(st.t[st.pos(h)]) - a_t - hyp.lag_s) <= self.rep_tol_s:
                out.append(si)
        return out

    def _chance_window_s(self, shot: ShotLocation, outliers: set[str]) -> float:
        """The arrival-time band a chance pulse would have to hit to pass for a member: as
        wide as the shot's own inliers scatter (six robust sigmas), within the member window.
        A tight real shot is not blamed on the full window's chance."""
        r = np.array([v for k, v in shot.residuals_s.items() if k not in outliers])
        if len(r) < 4:
            return self.early_s + self.late_s
        mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        return min(max(6.0 * mad, 2.0 * self.pick_sigma_s), self.early_s + self.late_s)

    def _arrivals(self, hyp: Hypothesis) -> dict[int, tuple[float, float]]:
        st = self.store
        out = {}
        for s, h in hyp.members.items():
            row = st.pos(h)
            out[s] = (float(st.t[row]), float(st.level[row]))
        return out

    def _stamp(self, shot: ShotLocation, key: str) -> ShotLocation:
        """The final shot keeps its hypothesis's key as its id: the provisional versions a
        console saw, and the incident built on them, keep their ids."""
        prov = shot.provenance
        created = prov.created_s if prov is not None else self._now
        return replace(
            shot,
            shot_id=key,
            provenance=Provenance.automatic(
                f"{ALGORITHM}+{prov.algorithm if prov else 'locate'}", VERSION, created
            ),
        )

    def _retract(self, hyp: Hypothesis) -> None:
        if hyp.shown:  # a console may show it: say it is gone
            self._provisional[hyp.key] = ProvisionalShot(
                hyp.key, hyp.revision + 1, self._provisional_shot(hyp), retracted=True
            )
        self._set_members(hyp, {})
        self._changed.discard(hyp.slot)
        self._drop(hyp)

    def _drop(self, hyp: Hypothesis) -> None:
        if hyp.final is None:
            self._set_members(hyp, {})
        for si in hyp.members:
            self._at_sensor.get(si, set()).discard(hyp.slot)
        self._hlive[hyp.slot] = False
        self._ht0[hyp.slot] = -np.inf
        self._children.pop(hyp.slot, None)
        if hyp.parent is not None:
            self._children.get(hyp.parent[0], set()).discard(hyp.slot)
        del self._hyps[hyp.slot]
        self._free_slots.append(hyp.slot)

    # .................................................................. output
    def _describe(self, hyp: Hypothesis) -> str:
        f = hyp.fit
        return (
            f"x={f.x_m:.1f} y={f.y_m:.1f} t0={f.t0_s:.3f} n={len(hyp.members)} "
            f"res_ms={np.round(np.sort(f.residuals_s) * 1000, 1).tolist()}"
        )

    def _provisional_shot(self, hyp: Hypothesis) -> ShotLocation:
        # a version per grown hypothesis, and a shell burst grows to hundreds of members:
        # per member only list indexing, the rest in numpy and C-level zips
        st = self.store
        f = hyp.fit
        members = hyp.members
        rows = st.rows(np.fromiter(members.values(), dtype=np.int64, count=len(members)))
        store_pulses = st.pulses
        pulses = [store_pulses[r] for r in rows.tolist()]
        pids = [p.pulse_id for p in pulses]
        r_s = f.residuals_s[: len(pids)]
        resid = dict(zip(pids, r_s.tolist(), strict=False))
        n_r = len(f.residuals_s)
        rms = math.sqrt(float(np.dot(f.residuals_s, f.residuals_s)) / n_r) if n_r else 0.0
        off = np.flatnonzero((r_s < -self.early_s) | (r_s > self.late_s))
        outliers = tuple(pids[i] for i in off.tolist())
        return ShotLocation(
            shot_id=hyp.key,
            t0_s=f.t0_s,
            x_m=f.x_m,
            y_m=f.y_m,
            z_m=f.z_m,
            pulse_ids=tuple(pids),
            sensors=tuple([p.sensor for p in pulses]),
            residuals_s=resid,
            residual_rms_s=rms,
            uncertainty_m=2.15 * f.sigma_xy_m,
            ellipse=None,
            covariance=None,
            dims=2,
            quality=0.0,
            outliers=outliers,
            speed_of_sound_mps=self.c,
            provenance=Provenance.automatic(ALGORITHM + "+provisional", VERSION, self._now),
        )

    # .................................................................. expiry
    def _expire(self, now: float) -> None:
        if math.isfinite(now) and now - self._last_expire < _EXPIRE_EVERY_S:
            return
        self._last_expire = now
        # final and retracted versions nobody drained (a replay without a console) go first
        while len(self._provisional) > _MAX_UNDRAINED:
            del self._provisional[next(iter(self._provisional))]
        st = self.store
        horizon = now - self.window_s - self._wait_s() if math.isfinite(now) else math.inf
        if self._hyps:
            oldest = min(h.fit.t0_s for h in self._hyps.values())
            horizon = min(horizon, oldest - self.early_s)
        a = st.head
        b = st.window(-math.inf, horizon)[1] if math.isfinite(horizon) else st.n
        if b <= a:
            return
        own = st.owner[a:b]
        lost = np.flatnonzero((own == FREE) | (own == SPENT) | (own == CLAIMED))
        self.stats.unassociated += len(lost)
        self.unassociated_ids.extend(
            p.pulse_id for j in lost[-1000:] if (p := st.pulses[a + int(j)]) is not None
        )
        if len(self.unassociated_ids) > 10000:
            del self.unassociated_ids[:-10000]
        for handle in st.handle[a:b][own == CLAIMED].tolist():
            self._claims.pop(int(handle), None)
        for si, t in zip(st.s[a:b].tolist(), np.round(st.t[a:b], 6).tolist(), strict=True):
            self._seen.pop((int(si), float(t)), None)
        st.drop_before(b)


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
