"""The flow across domains: pulses -> association/location -> incidents -> a sink.

:class:`Pipeline` is fed pulses one at a time in arrival order. It holds no I/O of its own: the
clock is passed in (a :class:`~shotwatch.core.clock.ReplayClock` that follows the data for a
replay, the system clock live) and results go to a sink (a list for tests, the database for
the demo and the server), so replay and live run one code path (ADR 0051).

A pulse id seen before is reported (``duplicates`` / ``conflicts``, each with an
:class:`InputError` in ``errors``) and not fed again, so a retried report is never counted
twice.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from shotwatch.core.acoustics import MIN_SOUND_SPEED_MPS, speed_of_sound_mps
from shotwatch.core.clock import Clock, ReplayClock
from shotwatch.core.errors import InputError
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Incident, Pulse, Sensor, ShotLocation
from shotwatch.core.settings import IncidentSettings, Settings
from shotwatch.storage.service import (
    SaveReport,
    save_incidents,
    save_pulses,
    save_shots,
)
from shotwatch.storage.writer import GroupWriter


class AssociatorLike(Protocol):
    def feed(self, pulse: Pulse) -> list[ShotLocation]: ...

    def flush(self, until_s: float | None = None) -> list[ShotLocation]: ...


class IncidentBuilderLike(Protocol):
    def feed(self, shot: ShotLocation) -> list[Incident]: ...

    def close_idle(self, now_s: float) -> list[Incident]: ...

    def flush(self) -> list[Incident]: ...


def shot_horizon_s(settings: Settings) -> float:
    """How long after its origin time a shot can still come out of the associator: the
    longest travel time to a sensor plus the associator's hold. Incidents idle for longer
    than this plus ``incidents.max_gap_s`` are complete."""
    assoc = settings.association
    return assoc.window_s + assoc.max_station_distance_m / MIN_SOUND_SPEED_MPS


def incident_close_delay_s(settings: Settings) -> float:
    """Worst-case wait from an incident's last shot to its close by :meth:`Pipeline.tick`."""
    return shot_horizon_s(settings) + settings.incidents.max_gap_s


class Sink(Protocol):
    """Where the pipeline's objects go, in dependency order (pulses before the shots that use
    them, shots before their incidents)."""

    def pulses(self, pulses: Sequence[Pulse]) -> None: ...

    def shots(self, shots: Sequence[ShotLocation]) -> None: ...

    def incidents(self, incidents: Sequence[Incident]) -> None: ...

    def close(self) -> None: ...


@dataclass
class ListSink:
    """Keeps everything in memory (tests, ``shotwatch locate``)."""

    pulse_list: list[Pulse] = field(default_factory=list)
    shot_list: list[ShotLocation] = field(default_factory=list)
    incident_list: list[Incident] = field(default_factory=list)

    def pulses(self, pulses: Sequence[Pulse]) -> None:
        self.pulse_list.extend(pulses)

    def shots(self, shots: Sequence[ShotLocation]) -> None:
        self.shot_list.extend(shots)

    def incidents(self, incidents: Sequence[Incident]) -> None:
        self.incident_list.extend(incidents)

    def close(self) -> None:
        return None


class TeeSink:
    """Sends everything to several sinks in order (the database and a list, say)."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def pulses(self, pulses: Sequence[Pulse]) -> None:
        for s in self.sinks:
            s.pulses(pulses)

    def shots(self, shots: Sequence[ShotLocation]) -> None:
        for s in self.sinks:
            s.shots(shots)

    def incidents(self, incidents: Sequence[Incident]) -> None:
        for s in self.sinks:
            s.incidents(incidents)

    def close(self) -> None:
        for s in self.sinks:
            s.close()


class StoreSink:
    """Writes to the database through :mod:`shotwatch.storage.service`.

    In the foreground (the default: replays, tools, tests) pulses are buffered and written in
    batches (one transaction per batch, or before the shots that use them); shots and
    incidents are committed as they come.

    With ``background=True`` (the server, ADR 0108) the caller never waits for the database:
    each call only queues its objects, and a writer thread commits what is waiting in one
    transaction, in dependency order (the batch's pulses, then its shots, then its
    incidents), having waited ``linger_s`` (50 ms) after the first for more to join (ADR 0108
    addendum). Pulses are then stored within that and one commit of their arrival, not held
    back until ``batch`` of them gather, so a restarted server finds them (``resume``). A
    batch that fails is retried, then written call by call so that one bad object cannot take
    the others with it; what still fails is kept in :attr:`errors`. :meth:`flush` waits for
    what is queued; :meth:`close` commits it and stops the writer.

    What the store reports (duplicates, conflicts) accumulates in :attr:`pulse_report`,
    :attr:`shot_report` and :attr:`incident_report`.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        batch: int = 500,
        background: bool = False,
        max_batch_calls: int = 2000,
        retries: int = 3,
        linger_s: float = 0.05,
    ) -> None:
        self._factory = session_factory
        self._batch = batch
        self._pending: list[Pulse] = []
        self.pulse_report = SaveReport()
        self.shot_report = SaveReport()
        self.incident_report = SaveReport()
        self.errors: list[str] = []
        self.commits = 0
        self._writer: GroupWriter[tuple[str, list[Any]]] | None = None
        if background:
            self._writer = GroupWriter(
                self._commit_calls,
                self._failed,
                name="pipeline-store-writer",
                max_batch=max_batch_calls,
                retries=retries,
                linger_s=linger_s,
            )

    def _write(
        self,
        pulses: Sequence[Pulse],
        shots: Sequence[ShotLocation] = (),
        incidents: Sequence[Incident] = (),
    ) -> None:
        reports = []
        with self._factory.begin() as session:  # the reports count only what was committed
            if pulses:
                reports.append((self.pulse_report, save_pulses(pulses, session=session)))
            if shots:
                reports.append((self.shot_report, save_shots(shots, session=session)))
            if incidents:
                reports.append((self.incident_report, save_incidents(incidents, session=session)))
        for total, one in reports:
            total.merge(one)
        self.commits += 1

    def pulses(self, pulses: Sequence[Pulse]) -> None:
        if self._writer is not None:
            self._put("pulses", pulses)
            return
        self._pending.extend(pulses)
        if len(self._pending) >= self._batch:
            self._flush_pending()

    def _flush_pending(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            self._write(pending)

    def shots(self, shots: Sequence[ShotLocation]) -> None:
        if self._writer is not None:
            self._put("shots", shots)
            return
        pending, self._pending = self._pending, []
        self._write(pending, shots=shots)

    def incidents(self, incidents: Sequence[Incident]) -> None:
        if self._writer is not None:
            self._put("incidents", incidents)
            return
        pending, self._pending = self._pending, []
        self._write(pending, incidents=incidents)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything handed over so far is written (or failed); at once in the
        foreground, where only buffered pulses can be waiting."""
        if self._writer is None:
            self._flush_pending()
            return True
        return self._writer.flush(timeout_s)

    def close(self) -> None:
        if self._writer is None:
            self._flush_pending()
            return
        self._writer.close()

    # -- the writer thread (background) ---------------------------------------------------
    def _put(self, kind: str, items: Sequence[object]) -> None:
        if items and self._writer is not None:
            self._writer.put((kind, list(items)))

    def _commit_calls(self, calls: list[tuple[str, list[Any]]]) -> None:
        """One transaction for a batch of calls: its pulses, then its shots, its incidents."""
        out: dict[str, list[Any]] = {"pulses": [], "shots": [], "incidents": []}
        for kind, items in calls:
            out[kind].extend(items)
        self._write(out["pulses"], out["shots"], out["incidents"])

    def _failed(self, call: tuple[str, list[Any]], exc: Exception) -> None:
        ids = [
            getattr(o, "pulse_id", None)
            or getattr(o, "shot_id", None)
            or getattr(o, "incident_id", "?")
            for o in call[1]
        ]
        self.errors.append(f"{call[0]} {ids[:5]}: {exc!r}")


@dataclass
class PipelineStats:
    pulses_in: int = 0
    pulses_fed: int = 0
    shots: int = 0
    incidents: int = 0
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


#: how much of the recent past the delivery lag is judged on (clock seconds)
_LAG_MEMORY_S = 5.0
#: how often (clock seconds) the delivery lag is worked out again
_LAG_REFRESH_S = 0.1
#: a live server's pulses tick the pipeline at most this often (clock seconds); its periodic
#: ticker (every 0.25 s) lets time pass between pulses
LIVE_TICK_EVERY_S = 0.02


class Pipeline:
    """Pulses in arrival order -> shots -> incidents -> ``sink``.

    ``associator`` and ``incident_builder`` default to the project's own
    (:class:`shotwatch.association.Associator`, :class:`shotwatch.incidents.IncidentBuilder`);
    pass others to compare algorithms on the same flow. ``frame`` geo-references results
    (lat/lon) when the deployment's local frame is known. ``c_mps`` defaults to the speed of
    sound at ``settings.location.default_temperature_c``. ``sensors`` (the registry) lets the
    associator weigh which sensors did not hear a shot.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        sink: Sink,
        *,
        c_mps: float | None = None,
        frame: LocalFrame | None = None,
        associator: AssociatorLike | None = None,
        incident_builder: IncidentBuilderLike | None = None,
        sensors: Sequence[Sensor] | None = None,
        dedup_window_s: float | None = None,
        tick_every_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sink = sink
        self.frame = frame
        self.c_mps = (
            c_mps
            if c_mps is not None
            else speed_of_sound_mps(settings.location.default_temperature_c)
        )
        self.associator = associator or default_associator(settings, self.c_mps, sensors)
        self.incident_builder = incident_builder or default_incident_builder(settings.incidents)
        # pulse ids are remembered long enough to catch retries; older ones age out in order
        self._dedup_window_s = (
            dedup_window_s if dedup_window_s is not None else 10.0 * settings.association.window_s
        )
        self._seen: dict[str, Pulse] = {}
        self._seen_order: deque[tuple[float, str]] = deque()
        self.stats = PipelineStats()
        self.errors: list[InputError] = []
        self._finished = False
        # (clock time a pulse was fed, how long after its arrival time that was), and the
        # median last worked out from them with when (tick runs after every pulse: the median
        # is refreshed at most every _LAG_REFRESH_S of the clock, not sorted per pulse)
        self._lags: deque[tuple[float, float]] = deque()
        self._lag: tuple[float, float] = (-math.inf, 0.0)
        # a live server (LIVE_TICK_EVERY_S) lets a pulse tick only when the last tick is that
        # old on the clock: at 100 reports/s a tick per pulse was 9 % of its loop, and its
        # periodic ticker still lets time pass when no pulse comes; replays tick every pulse
        self.tick_every_s = tick_every_s
        self._ticked_s = -math.inf

    # ------------------------------------------------------------------ feeding
    def feed(self, pulse: Pulse) -> list[Incident]:
        """Take one pulse; return the incidents this step completed."""
        if self._finished:
            raise RuntimeError("pipeline already finished")
        self.stats.pulses_in += 1
        if not self._remember(pulse):
            return []
        self.stats.pulses_fed += 1
        now = self.clock.now()
        self._lags.append((now, now - pulse.t_s))
        self.sink.pulses([pulse])
        shots = list(self.associator.feed(pulse))
        out = self._after_shots(shots)
        if not 0.0 <= now - self._ticked_s < self.tick_every_s:
            out += self.tick()
        return out

    def feed_many(self, pulses: Iterable[Pulse]) -> list[Incident]:
        out: list[Incident] = []
        for p in pulses:
            out += self.feed(p)
        return out

    def delivery_lag_s(self) -> float:
        """How far behind the clock the pulses come in now: the median, over the pulses fed in
        the last ``_LAG_MEMORY_S`` of the clock, of how long after its arrival time each was
        fed (a sensor's post-roll, the network, a backlog in the server), within [0,
        ``association.window_s``]; 0 when none came. A replay feeds at the arrival time: 0."""
        now = self.clock.now()
        at, lag = self._lag
        if 0.0 <= now - at < _LAG_REFRESH_S:
            return lag
        lags = self._lags
        while lags and lags[0][0] < now - _LAG_MEMORY_S:
            lags.popleft()
        lag = 0.0
        if lags:
            ordered = sorted(x for _, x in lags)
            lag = min(max(ordered[len(ordered) // 2], 0.0), self.settings.association.window_s)
        self._lag = (now, lag)
        return lag

    def tick(self) -> list[Incident]:
        """Let time pass: shots whose wait is over are completed. Live drivers call this
        periodically; replays get it after every pulse. The time that has passed is the
        clock's less the delivery lag (ADR 0109): a shot's wait is counted on the stream of
        arrivals, so one whose last pulses are still on their way (post-roll, a backlog) is
        not closed without them."""
        self._ticked_s = self.clock.now()
        now_s = self._ticked_s - self.delivery_lag_s()
        out = self._after_shots(list(self.associator.flush(until_s=now_s)))
        horizon_s = shot_horizon_s(self.settings)
        out += self._emit_incidents(list(self.incident_builder.close_idle(now_s - horizon_s)))
        return out

    def finish(self) -> list[Incident]:
        """End of input: flush every pending shot and incident, close the sink."""
        if self._finished:
            return []
        out = self._after_shots(list(self.associator.flush(until_s=None)))
        out += self._emit_incidents(list(self.incident_builder.flush()))
        self.sink.close()
        self._finished = True
        return out

    # ------------------------------------------------------------------ internals
    def _remember(self, pulse: Pulse) -> bool:
        while self._seen_order and self._seen_order[0][0] < pulse.t_s - self._dedup_window_s:
            _, old = self._seen_order.popleft()
            self._seen.pop(old, None)
        seen = self._seen.get(pulse.pulse_id)
        if seen is None:
            self._seen[pulse.pulse_id] = pulse
            self._seen_order.append((pulse.t_s, pulse.pulse_id))
            return True
        if seen == pulse:
            self.stats.duplicates.append(pulse.pulse_id)
            reason = "duplicate pulse: already received, not counted again"
        else:
            self.stats.conflicts.append(pulse.pulse_id)
            reason = "pulse id reused with different content: the first one is kept"
        self.errors.append(InputError(f"pulse {pulse.pulse_id}", "pulse_id", reason))
        return False

    def _after_shots(self, shots: list[ShotLocation]) -> list[Incident]:
        if not shots:
            return []
        if self.frame is not None:
            shots = [self._geo_shot(s) for s in shots]
        self.stats.shots += len(shots)
        self.sink.shots(shots)
        incidents: list[Incident] = []
        for s in shots:
            incidents += self.incident_builder.feed(s)
        return self._emit_incidents(incidents)

    def _emit_incidents(self, incidents: list[Incident]) -> list[Incident]:
        if not incidents:
            return []
        if self.frame is not None:
            incidents = [self._geo_incident(i) for i in incidents]
        self.stats.incidents += len(incidents)
        self.sink.incidents(incidents)
        return incidents

    def geo_shot(self, s: ShotLocation) -> ShotLocation:
        """``s`` with lat/lon when the deployment's frame is known."""
        return self._geo_shot(s)

    def _geo_shot(self, s: ShotLocation) -> ShotLocation:
        if s.lat_deg is not None or self.frame is None:
            return s
        lat, lon, _ = self.frame.to_geo(s.x_m, s.y_m, s.z_m)
        return s.with_geo(lat, lon)

    def _geo_incident(self, i: Incident) -> Incident:
        if i.lat_deg is not None or self.frame is None:
            return i
        lat, lon, _ = self.frame.to_geo(i.x_m, i.y_m, 0.0)
        return replace(i, lat_deg=lat, lon_deg=lon)


def replay(pipeline: Pipeline, pulses: Iterable[Pulse], clock: ReplayClock) -> list[Incident]:
    """Feed recorded pulses in arrival order, moving ``clock`` with the data, then finish.
    This is the live path with a clock that follows the recording."""
    out: list[Incident] = []
    for p in sorted(pulses, key=lambda p: (p.t_s, p.sensor, p.pulse_id)):
        clock.advance_to(p.t_s)
        out += pipeline.feed(p)
    return out + pipeline.finish()


def default_associator(
    settings: Settings, c_mps: float, sensors: Sequence[Sensor] | None = None
) -> AssociatorLike:
    """The project's associator; known ``sensors`` let it use which ones stayed silent."""
    from shotwatch.association import Associator

    return Associator(settings, c_mps, sensors)


def default_incident_builder(settings: IncidentSettings) -> IncidentBuilderLike:
    from shotwatch.incidents import IncidentBuilder

    return IncidentBuilder(settings)
