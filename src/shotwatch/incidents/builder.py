"""Located shots -> incidents: rounds, shooters, automatic fire and a moving shooter's track.

A pure core fed one shot at a time (``feed``), whose clock is the shots' own origin times: an
incident closes when a later shot arrives more than ``max_gap_s`` after its last shot (or at
``flush``). Inside a closed incident:

1. **Rounds.** Duplicate detections of one round (two shots sharing a pulse, or origin times
   within ``duplicate_window_s`` at positions closer than their uncertainties allow) are merged,
   keeping the better-constrained one; each remaining shot is a round.
2. **Shooters.** Shots whose residual RMS exceeds ``reliable_max_rms_s`` (typically pulses of
   different rounds mixed into one set) count as rounds of the shooter firing at that time
   but never start a shooter or bend a track. The other shots, in time order, join the track
   whose predicted position (its line fit when it has >= 3 shots, else its last shot) is
   within ``shooter_separation_m`` plus twice the combined location uncertainty; otherwise
   they start a new shooter. Two stationary shooters 50 m apart thus stay apart, while a
   moving shooter's consecutive shots chain into one track.
3. **Automatic fire.** Per shooter, the median inter-shot interval gives the cadence; at least
   ``automatic_min_rounds`` rounds at ``automatic_min_rate_rps`` or faster is automatic.
4. **Movement.** Per shooter, a robust (Huber IRLS) weighted line fit of position against time;
   speed and heading are reported only when the speed exceeds ``movement_min_sigma`` standard
   errors (from the larger of the reported uncertainty and the fit's own scatter) and the
   displacement exceeds ``movement_min_distance_m``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from shotwatch.core.ids import stable_id
from shotwatch.core.model import Incident, Movement, Provenance, ShotLocation
from shotwatch.core.settings import IncidentSettings

ALGORITHM = "incident-builder"
VERSION = "0.1"
#: uncertainty_m is a 90 % horizontal radius; for a circular Gaussian r90 = 2.146 sigma.
R90_PER_SIGMA = math.sqrt(-2.0 * math.log(0.1))
#: sigma used when a shot carries no usable uncertainty.
DEFAULT_SIGMA_M = 5.0
MIN_SIGMA_M = 0.5
#: shots with fewer sensors have too few degrees of freedom for their RMS to set the floor
FLOOR_MIN_SENSORS = 5
#: a two-shot track predicts with its velocity only from shots this far apart in time, for
#: speeds a shooter can have (on foot or in a car), and up to this many spans ahead
MIN_VELOCITY_BASE_S = 0.2
MAX_SHOOTER_SPEED_MPS = 40.0
MAX_EXTRAPOLATION = 5.0
#: doubtful shots in no shooter's gate that chain into a track of this many are a shooter
PROMOTE_MIN_SHOTS = 3


def shot_sigma_m(shot: ShotLocation) -> float:
    """One-sigma horizontal location error of a shot, from its 90 % radius."""
    u = shot.uncertainty_m
    if not math.isfinite(u) or u <= 0:
        return DEFAULT_SIGMA_M
    return max(u / R90_PER_SIGMA, MIN_SIGMA_M)


@dataclass(frozen=True, slots=True)
class LineFit:
    """Position as a linear function of time, with the slope's standard errors."""

    t_ref_s: float
    x0_m: float
    y0_m: float
    vx_mps: float
    vy_mps: float
    speed_sigma_mps: float
    scatter_m: float

    def at(self, t_s: float) -> tuple[float, float]:
        dt = t_s - self.t_ref_s
        return (self.x0_m + self.vx_mps * dt, self.y0_m + self.vy_mps * dt)


def fit_track(
    t_s: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, sigma_m: np.ndarray, iterations: int = 5
) -> LineFit | None:
    """Huber-weighted least-squares line through (t, x) and (t, y); None if < 2 shots or no
    time span."""
    if t_s.size < 2 or float(np.ptp(t_s)) <= 0:
        return None
    w0 = 1.0 / np.square(sigma_m)
    w = w0.copy()
    for _ in range(iterations):
        tm = float(np.sum(w * t_s) / np.sum(w))
        dt = t_s - tm
        stt = float(np.sum(w * dt * dt))
        if stt <= 0:
            return None
        xm = float(np.sum(w * x_m) / np.sum(w))
        ym = float(np.sum(w * y_m) / np.sum(w))
        vx = float(np.sum(w * dt * (x_m - xm)) / stt)
        vy = float(np.sum(w * dt * (y_m - ym)) / stt)
        r = np.hypot(x_m - (xm + vx * dt), y_m - (ym + vy * dt)) / sigma_m
        huber = np.where(r <= 2.0, 1.0, 2.0 / np.maximum(r, 1e-12))
        w = w0 * huber
    res = np.hypot(x_m - (xm + vx * dt), y_m - (ym + vy * dt))
    dof = max(t_s.size - 2, 1)
    scatter = float(np.sqrt(np.sum(res * res) / (2 * dof))) if t_s.size > 2 else 0.0
    # slope sd per axis: sigma / sqrt(sum (t - tm)^2) with sigma the larger of reported/observed
    sig = max(float(np.sqrt(np.mean(np.square(sigma_m)))), scatter)
    plain_stt = float(np.sum(dt * dt))
    speed_sigma = sig / math.sqrt(plain_stt) if plain_stt > 0 else math.inf
    return LineFit(tm, xm, ym, vx, vy, speed_sigma, scatter)


@dataclass(slots=True)
class _Track:
    shots: list[ShotLocation] = field(default_factory=list)
    fit: LineFit | None = None
    weak: list[ShotLocation] = field(default_factory=list)  # rounds with doubtful positions

    def time_gap_s(self, t_s: float) -> float:
        lo, hi = self.shots[0].t0_s, self.shots[-1].t0_s
        return max(lo - t_s, t_s - hi, 0.0)

    @property
    def rounds(self) -> int:
        return len(self.shots) + len(self.weak)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        t = np.array([s.t0_s for s in self.shots])
        x = np.array([s.x_m for s in self.shots])
        y = np.array([s.y_m for s in self.shots])
        sig = np.array([shot_sigma_m(s) for s in self.shots])
        return t, x, y, sig

    def add(self, shot: ShotLocation) -> None:
        self.shots.append(shot)
        if len(self.shots) >= 3:
            self.fit = fit_track(*self.arrays())

    def predict(self, t_s: float) -> tuple[tuple[float, float], float]:
        """Expected position at ``t_s`` and its one-sigma uncertainty."""
        if self.fit is not None:
            return self.fit.at(t_s), max(self.fit.scatter_m, _mean_sigma(self.shots))
        last = self.shots[-1]
        if len(self.shots) == 2:  # two shots: extrapolate their velocity, less sure further out
            first = self.shots[0]
            dt = last.t0_s - first.t0_s
            if dt >= MIN_VELOCITY_BASE_S:
                vx, vy = (last.x_m - first.x_m) / dt, (last.y_m - first.y_m) / dt
                k = (t_s - last.t0_s) / dt
                if math.hypot(vx, vy) <= MAX_SHOOTER_SPEED_MPS and 0.0 <= k <= MAX_EXTRAPOLATION:
                    sig = _mean_sigma(self.shots) * math.sqrt(1.0 + 2.0 * k * k)
                    return (last.x_m + vx * dt * k, last.y_m + vy * dt * k), sig
        return (last.x_m, last.y_m), shot_sigma_m(last)

    def weighted_position(self) -> tuple[float, float]:
        _t, x, y, sig = self.arrays()
        w = 1.0 / np.square(sig)
        return (float(np.sum(w * x) / np.sum(w)), float(np.sum(w * y) / np.sum(w)))


def _mean_sigma(shots: list[ShotLocation]) -> float:
    return float(np.sqrt(np.mean([shot_sigma_m(s) ** 2 for s in shots])))


@dataclass(slots=True, eq=False)  # one group is itself, whatever it holds
class _Open:
    shots: list[ShotLocation] = field(default_factory=list)
    last_t_s: float = -math.inf

    def near(self, shot: ShotLocation, max_distance_m: float) -> bool:
        return any(
            math.hypot(s.x_m - shot.x_m, s.y_m - shot.y_m) <= max_distance_m for s in self.shots
        )


class IncidentBuilder:
    """Groups shots close in time and space into incidents (see the module docstring)."""

    def __init__(self, settings: IncidentSettings | None = None) -> None:
        self.settings = settings or IncidentSettings()
        self._open: list[_Open] = []
        self._now_s = -math.inf
        self._places: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # for preview

    def feed(self, shot: ShotLocation) -> list[Incident]:
        """Take one located shot; return the incidents that this shot's time closed."""
        st = self.settings
        self._now_s = max(self._now_s, shot.t0_s)
        closed = self._close(lambda o: self._now_s - o.last_t_s > st.max_gap_s)
        joined = [
            o
            for o in self._open
            if shot.t0_s - o.last_t_s <= st.max_gap_s and o.near(shot, st.max_distance_m)
        ]
        if not joined:
            target = _Open()
            self._open.append(target)
        else:
            target = joined[0]
            for other in joined[1:]:  # the shot bridges two incidents: they are one
                target.shots.extend(other.shots)
                target.last_t_s = max(target.last_t_s, other.last_t_s)
                self._open.remove(other)
        target.shots.append(shot)
        target.last_t_s = max(target.last_t_s, shot.t0_s)
        self._places = None
        return closed

    def close_idle(self, now_s: float) -> list[Incident]:
        """Let time pass without a shot: close the incidents whose last shot is more than
        ``max_gap_s`` before ``now_s`` (a live system must not wait for the next gunfire to
        finish the last incident). ``now_s`` must be a time before which no further shot can
        still arrive; the pipeline passes its clock minus the associator's hold horizon."""
        st = self.settings
        self._now_s = max(self._now_s, now_s)
        return self._close(lambda o: self._now_s - o.last_t_s > st.max_gap_s)

    def open_incidents(self, *, created_s: float) -> list[Incident]:
        """The incidents still open, each as it stands now (nothing is closed). A live server
        shows these as preliminary versions; the same shots give the same incident id."""
        return [self.build(o.shots, created_s=created_s) for o in self._open]

    def preview(
        self,
        tentative: list[ShotLocation],
        *,
        created_s: float,
        holding: Collection[str] = (),
        only: Collection[str] | None = None,
    ) -> list[Incident]:
        """The open incidents as they would stand with ``tentative`` shots added (shots still
        forming: the associator's plausible provisional versions), for each incident that
        holds at least one of them or a final shot named in ``holding`` (one that just came
        out); with ``only``, just those holding one of the shots it names (building an
        incident is the expensive part, and a live server shows only what changed). Nothing
        is kept: the final shots come through ``feed``."""
        st = self.settings
        # the same grouping as ``feed``, with the open shots' places in arrays: a busy night
        # holds hundreds of open incidents and a live server previews on every report.
        # Groups keep their index (list order); a merged group points at the one it joined.
        groups = [_Open(o.shots, o.last_t_s) for o in self._open]  # lists copied on change
        own: set[int] = set()
        into = list(range(len(groups)))

        def root(k: int) -> int:
            while into[k] != k:
                into[k] = k = into[into[k]]
            return k

        xs, ys, of = self._open_places()
        added: list[tuple[float, float, int]] = []  # tentative shots placed so far
        touched: list[_Open] = [
            o for o in groups if holding and any(s.shot_id in holding for s in o.shots)
        ]
        for shot in sorted(tentative, key=lambda s: s.t0_s):
            close = np.hypot(xs - shot.x_m, ys - shot.y_m) <= st.max_distance_m
            near = {root(k) for k in of[close].tolist()}
            near.update(
                root(k)
                for x, y, k in added
                if math.hypot(x - shot.x_m, y - shot.y_m) <= st.max_distance_m
            )
            joined = [k for k in sorted(near) if shot.t0_s - groups[k].last_t_s <= st.max_gap_s]
            if not joined:
                groups.append(_Open())
                into.append(len(groups) - 1)
                joined = [len(groups) - 1]
                own.add(joined[0])
            k_target = joined[0]
            target = groups[k_target]
            if k_target not in own:
                target.shots = list(target.shots)
                own.add(k_target)
            for k in joined[1:]:
                other = groups[k]
                target.shots.extend(other.shots)
                target.last_t_s = max(target.last_t_s, other.last_t_s)
                into[k] = k_target
                if other in touched:
                    touched.remove(other)
            target.shots.append(shot)
            target.last_t_s = max(target.last_t_s, shot.t0_s)
            added.append((shot.x_m, shot.y_m, k_target))
            if target not in touched:
                touched.append(target)
        if only is not None:
            touched = [o for o in touched if any(s.shot_id in only for s in o.shots)]
        return [self.build(o.shots, created_s=created_s) for o in touched]

    def _open_places(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The open shots' x, y and their group's index (kept until the open groups change)."""
        if self._places is None:
            groups = self._open
            self._places = (
                np.array([s.x_m for o in groups for s in o.shots], dtype=float),
                np.array([s.y_m for o in groups for s in o.shots], dtype=float),
                np.array([k for k, o in enumerate(groups) for _ in o.shots], dtype=np.intp),
            )
        return self._places

    def flush(self) -> list[Incident]:
        """Close every open incident (end of a replay or a shutdown)."""
        return self._close(lambda o: True)

    def _close(self, done: Callable[[_Open], bool]) -> list[Incident]:
        finished = [o for o in self._open if done(o)]
        if not finished:
            return []
        self._open = [o for o in self._open if not done(o)]
        self._places = None
        incidents = [self.build(o.shots, created_s=self._now_s) for o in finished]
        return sorted(incidents, key=lambda i: i.start_s)

    # ------------------------------------------------------------------ one incident

    def dedupe(self, shots: list[ShotLocation]) -> tuple[list[ShotLocation], list[str]]:
        """Rounds: merge duplicate detections of one round; return (kept, dropped ids)."""
        st = self.settings
        kept: list[ShotLocation] = []
        dropped: list[str] = []
        for shot in sorted(shots, key=lambda s: s.t0_s):
            dup_of = None
            for k, other in enumerate(kept):
                if self._duplicates(shot, other, st):
                    dup_of = k
                    break
            if dup_of is None:
                kept.append(shot)
                continue
            other = kept[dup_of]
            if _better(shot, other):
                kept[dup_of] = shot
                dropped.append(other.shot_id)
            else:
                dropped.append(shot.shot_id)
        kept.sort(key=lambda s: s.t0_s)
        return kept, dropped

    @staticmethod
    def _duplicates(a: ShotLocation, b: ShotLocation, st: IncidentSettings) -> bool:
        if set(a.pulse_ids) & set(b.pulse_ids):
            return True
        if abs(a.t0_s - b.t0_s) > st.duplicate_window_s:
            return False
        d = math.hypot(a.x_m - b.x_m, a.y_m - b.y_m)
        allowed = max(st.duplicate_distance_m, 2.5 * math.hypot(shot_sigma_m(a), shot_sigma_m(b)))
        return d <= allowed

    def _gated(self, shot: ShotLocation, tracks: list[_Track]) -> _Track | None:
        """The track whose prediction at the shot's time is nearest within its gate."""
        sep = self.settings.shooter_separation_m
        best, best_ratio = None, math.inf
        for tr in tracks:
            (px, py), sig = tr.predict(shot.t0_s)
            gate = sep + 2.0 * math.hypot(sig, shot_sigma_m(shot))
            ratio = math.hypot(shot.x_m - px, shot.y_m - py) / gate
            if ratio <= 1.0 and ratio < best_ratio:
                best, best_ratio = tr, ratio
        return best

    def attribute(self, shot: ShotLocation, tracks: list[_Track]) -> _Track:
        """A doubtful round's shooter: the track it falls in the gate of (its position is
        doubtful, not necessarily wrong: with two shooters firing at once this tells them
        apart), else the shooter firing at that time (nearest in time, then most rounds)."""
        gated = self._gated(shot, tracks)
        if gated is not None:
            return gated
        return min(tracks, key=lambda tr: (tr.time_gap_s(shot.t0_s), -len(tr.shots)))

    def tracks(self, shots: list[ShotLocation]) -> list[_Track]:
        """Shooters: assign time-ordered shots to position tracks."""
        tracks: list[_Track] = []
        for shot in shots:
            best = self._gated(shot, tracks)
            if best is None:
                best = _Track()
                tracks.append(best)
            best.add(shot)
        return tracks

    def movement(self, track: _Track) -> Movement | None:
        st = self.settings
        if len(track.shots) < 3:
            return None
        fit = fit_track(*track.arrays())
        if fit is None:
            return None
        speed = math.hypot(fit.vx_mps, fit.vy_mps)
        span = track.shots[-1].t0_s - track.shots[0].t0_s
        distance = speed * span
        if speed < st.movement_min_sigma * fit.speed_sigma_mps:
            return None
        if distance < st.movement_min_distance_m:
            return None
        heading = math.degrees(math.atan2(fit.vx_mps, fit.vy_mps)) % 360.0
        return Movement(speed, heading, distance)

    def cadence(self, track: _Track) -> tuple[float | None, bool]:
        st = self.settings
        times = sorted(s.t0_s for s in (*track.shots, *track.weak))
        if len(times) < 2:
            return None, False
        intervals = np.diff(times)
        median = float(np.median(intervals))
        cadence = 1.0 / median if median > 0 else None
        automatic = (
            len(times) >= st.automatic_min_rounds
            and cadence is not None
            and cadence >= st.automatic_min_rate_rps
        )
        return cadence, automatic

    def build(self, shots: list[ShotLocation], *, created_s: float) -> Incident:
        """One incident from its shots (also usable on a complete, known group of shots)."""
        kept, dropped = self.dedupe(shots)
        st = self.settings
        limit = max(st.reliable_max_rms_s, st.reliable_rms_ratio * rms_floor_s(kept))
        reliable = [s for s in kept if s.residual_rms_s <= limit]
        if not reliable:
            reliable = kept
        weak = [s for s in kept if s not in reliable]
        tracks = self.tracks(reliable)
        stray: list[ShotLocation] = []
        for w_shot in weak:
            gated = self._gated(w_shot, tracks)
            if gated is not None:
                gated.weak.append(w_shot)
            else:
                stray.append(w_shot)
        # doubtful shots outside every gate: several consistent ones are a shooter whose
        # rounds all fit worse than the best (e.g. farther from most sensors); the rest are
        # rounds of the shooter firing at that time
        for tr in self.tracks(stray):
            if len(tr.shots) >= PROMOTE_MIN_SHOTS:
                tracks.append(tr)
            else:
                for w_shot in tr.shots:
                    self.attribute(w_shot, tracks).weak.append(w_shot)
        shooters: list[dict[str, object]] = []
        positions: list[tuple[float, float]] = []
        any_auto = False
        best_cadence: float | None = None
        best_move: Movement | None = None
        best_move_rounds = 0
        best_rounds = 0
        for tr in tracks:
            x, y = tr.weighted_position()
            cadence, automatic = self.cadence(tr)
            move = self.movement(tr)
            positions.append((x, y))
            n = tr.rounds
            if automatic and not any_auto:
                best_cadence, any_auto = cadence, True
            elif not any_auto and n > best_rounds:
                best_cadence = cadence
            best_rounds = max(best_rounds, n)
            if move is not None and n > best_move_rounds:
                best_move, best_move_rounds = move, n
            shooters.append(
                {
                    "x_m": x,
                    "y_m": y,
                    "rounds": n,
                    "shot_ids": [s.shot_id for s in tr.shots],
                    "doubtful_shot_ids": [s.shot_id for s in tr.weak],
                    "cadence_rps": cadence,
                    "automatic": automatic,
                    "speed_mps": move.speed_mps if move else None,
                    "heading_deg": move.heading_deg if move else None,
                }
            )
        if not any_auto and 2 * best_rounds < len(kept):
            # No shooter holds half the rounds: the positions are fragmented, as when the
            # associator mixes pulses of rounds fired faster than the sensors' spacing allows
            # (automatic fire). Judge the cadence on all the incident's rounds then, as rounds
            # over their time span (robust to the uneven spacing mixing leaves); whole
            # shooters each holding half or more (two shooters exchanging fire) never do.
            span = kept[-1].t0_s - kept[0].t0_s
            if len(kept) >= st.automatic_min_rounds and span > 0:
                rate = (len(kept) - 1) / span
                if rate >= st.automatic_min_rate_rps:
                    best_cadence, any_auto = rate, True
        sig = np.array([shot_sigma_m(s) for s in reliable])
        w = 1.0 / np.square(sig)
        cx = float(np.sum(w * np.array([s.x_m for s in reliable])) / np.sum(w))
        cy = float(np.sum(w * np.array([s.y_m for s in reliable])) / np.sum(w))
        lats = [s.lat_deg for s in reliable if s.lat_deg is not None]
        lons = [s.lon_deg for s in reliable if s.lon_deg is not None]
        return Incident(
            # from the first shot's id alone: a shot keeps its id from its first provisional
            # version to the final one, so the incident keeps its id too
            incident_id=stable_id("inc", kept[0].shot_id),
            shot_ids=tuple(s.shot_id for s in kept),
            start_s=kept[0].t0_s,
            end_s=kept[-1].t0_s,
            x_m=cx,
            y_m=cy,
            rounds=len(kept),
            shooters=len(tracks),
            shooter_positions=tuple(positions),
            automatic=any_auto,
            cadence_rps=best_cadence,
            movement=best_move,
            lat_deg=float(np.mean(lats)) if lats and len(lats) == len(lons) else None,
            lon_deg=float(np.mean(lons)) if lons and len(lats) == len(lons) else None,
            provenance=Provenance.automatic(ALGORITHM, VERSION, created_s),
            extra={"shooters": shooters, "duplicate_shot_ids": dropped},
        )


def rms_floor_s(shots: list[ShotLocation]) -> float:
    """The smallest residual RMS among an incident's well-determined shots (>=
    ``FLOOR_MIN_SENSORS`` sensors, else all): the error its rounds share (pick error, wind and
    temperature the locator does not know, diffraction), which a correctly grouped round does
    not exceed by much, and a set mixing pulses of different rounds does."""
    good = [s.residual_rms_s for s in shots if s.n_sensors >= FLOOR_MIN_SENSORS]
    rms = good or [s.residual_rms_s for s in shots]
    finite = [r for r in rms if math.isfinite(r)]
    return min(finite) if finite else 0.0


def _better(a: ShotLocation, b: ShotLocation) -> bool:
    """Is ``a`` a better-constrained location of the same round than ``b``?"""
    if a.n_sensors != b.n_sensors:
        return a.n_sensors > b.n_sensors
    return shot_sigma_m(a) < shot_sigma_m(b)
