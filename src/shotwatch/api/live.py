"""The live pipeline behind the server: verified pulses in, shots and incidents out.

:class:`PipelineConsumer` adapts :class:`shotwatch.pipeline.Pipeline` (association, location,
incident building; results written to its sink, e.g. the database) to the server's
``PulseConsumer`` port, tapping the located shots for the console's evidence. The server calls
:meth:`tick` periodically (:func:`ticker`) so shots and incidents complete when their waiting
window is over even if no further pulse arrives.

An incident closes only ``incidents.max_gap_s`` (30 s by default) after its last shot. With
``preliminary`` on (as ``shotwatch serve`` runs, ADR 0106, ADR 0017), the incident also comes
out while it forms: the associator's plausible provisional shots (hypotheses that pass the
evidence tests as they stand, ADR 0015) are added to the open incidents for a preview, and
each incident a new or changed provisional shot is in comes out as it stands
(``extra["open"] = True``, ``extra["tentative"] = True`` while it rests on shots that are not
final; same incident id as the final one, since a shot keeps its id). An incident that rested
only on provisional shots that were then retracted comes out once more with
``extra["withdrawn"] = True``. Final shots yield the open incident they joined, and the closed
incident arrives as the last machine version.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from shotwatch.core.model import Incident, Pulse, ShotLocation
from shotwatch.pipeline import Pipeline, Sink


class ShotTap:
    """A sink that keeps the shots it sees (to hand to the console) and forwards everything."""

    def __init__(self, inner: Sink | None = None) -> None:
        self.inner = inner
        self._shots: list[ShotLocation] = []

    def take(self) -> list[ShotLocation]:
        out, self._shots = self._shots, []
        return out

    def pulses(self, pulses: Sequence[Pulse]) -> None:
        if self.inner is not None:
            self.inner.pulses(pulses)

    def shots(self, shots: Sequence[ShotLocation]) -> None:
        self._shots.extend(shots)
        if self.inner is not None:
            self.inner.shots(shots)

    def incidents(self, incidents: Sequence[Incident]) -> None:
        if self.inner is not None:
            self.inner.incidents(incidents)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


class PipelineConsumer:
    def __init__(
        self,
        make_pipeline: Callable[[Sink], Pipeline],
        inner: Sink | None = None,
        *,
        preliminary: bool = False,
    ):
        self.tap = ShotTap(inner)
        self.pipeline = make_pipeline(self.tap)
        self.preliminary = preliminary
        self._tentative: dict[str, ShotLocation] = {}  # plausible provisional shots by id
        self._shown: dict[str, tuple[object, ...]] = {}  # incident id -> what was last shown
        self._rests_on: dict[str, set[str]] = {}  # tentative incident id -> its shot ids
        self._last: dict[str, Incident] = {}  # the version last shown of each incident

    def close(self) -> None:
        """Shutdown: write what the sink still holds (the pipeline's open shots and incidents
        are not forced out; a restarted server rebuilds them from the stored pulses)."""
        self.tap.close()

    def feed(self, pulse: Pulse) -> tuple[Sequence[ShotLocation], Sequence[Incident]]:
        incidents = list(self.pipeline.feed(pulse))
        shots = self.tap.take()
        return shots, self._closed(incidents) + self._open_versions(shots)

    def tick(self) -> tuple[Sequence[ShotLocation], Sequence[Incident]]:
        """Let time pass: completes held shots and closes idle incidents (Pipeline.tick)."""
        incidents = list(self.pipeline.tick())
        shots = self.tap.take()
        return shots, self._closed(incidents) + self._open_versions(shots)

    def _closed(self, incidents: list[Incident]) -> list[Incident]:
        for inc in incidents:  # closed: no more preliminary versions of it
            self._last.pop(inc.incident_id, None)
            self._shown.pop(inc.incident_id, None)
            self._rests_on.pop(inc.incident_id, None)
        return incidents

    def _open_versions(self, shots: Sequence[ShotLocation]) -> list[Incident]:
        """Preliminary versions of the incidents that new final shots joined or that changed
        provisional shots are in."""
        if not self.preliminary:
            return []
        # final shots never shown as provisional (their pulses came in a bunch, or the
        # hypothesis passed the evidence tests only when complete): their incidents are
        # built too, or they would first appear when they close
        unseen = {s.shot_id for s in shots if s.shot_id not in self._tentative}
        changed, retracted = self._drain_provisional(shots)
        builder = self.pipeline.incident_builder
        preview = getattr(builder, "preview", None)
        open_incidents = getattr(builder, "open_incidents", None)
        now = self.pipeline.clock.now()
        wanted = {s.shot_id for s in shots} | changed
        built: list[Incident] = []
        if preview is not None and self._tentative:
            built = list(
                preview(
                    list(self._tentative.values()),
                    created_s=now,
                    holding=unseen,
                    # only what is shown, unless a retraction needs every open incident's id
                    only=None if retracted else wanted,
                )
            )
        elif open_incidents is not None and shots:
            built = list(open_incidents(created_s=now))
        out: list[Incident] = []
        seen_ids = set()
        for inc in built:
            seen_ids.add(inc.incident_id)
            if not wanted.intersection(inc.shot_ids):
                continue
            resting = {sid for sid in inc.shot_ids if sid in self._tentative}
            look = (
                inc.shot_ids,
                inc.rounds,
                inc.shooters,
                round(inc.x_m),
                round(inc.y_m),
                bool(resting),
            )
            if self._shown.get(inc.incident_id) == look:
                continue  # a provisional shot grew, the incident did not change
            self._shown[inc.incident_id] = look
            extra = {**inc.extra, "open": True}
            if resting:
                extra["tentative"] = True
                self._rests_on[inc.incident_id] = resting
            else:
                self._rests_on.pop(inc.incident_id, None)
            out.append(self._geo(replace(inc, extra=extra)))
        if retracted:
            # incidents that rested only on provisional shots now gone: say so once
            for iid, resting in list(self._rests_on.items()):
                if iid in seen_ids or not resting & retracted:
                    continue
                del self._rests_on[iid]
                self._shown.pop(iid, None)
                out.append(self._withdrawn(iid, resting))
        return out

    def _drain_provisional(self, finals: Sequence[ShotLocation]) -> tuple[set[str], set[str]]:
        """Keep the plausible provisional shots; return the ids that changed and the ids of
        those retracted (or no longer plausible)."""
        for s in finals:
            self._tentative.pop(s.shot_id, None)
        drain = getattr(self.pipeline.associator, "drain_provisional", None)
        if drain is None:
            return set(), set()
        changed: set[str] = set()
        gone: set[str] = set()
        for upd in drain():
            if upd.final:
                self._tentative.pop(upd.key, None)
                continue
            if upd.retracted or not upd.plausible:
                if self._tentative.pop(upd.key, None) is not None:
                    gone.add(upd.key)
                continue
            shot = self.pipeline.geo_shot(upd.shot)
            self._tentative[upd.key] = shot
            changed.add(upd.key)
        return changed, gone

    def _withdrawn(self, incident_id: str, shot_ids: set[str]) -> Incident:
        last = self._last.get(incident_id)
        assert last is not None
        return replace(last, extra={**last.extra, "open": True, "withdrawn": True})

    def _geo(self, inc: Incident) -> Incident:
        frame = self.pipeline.frame
        if inc.lat_deg is None and frame is not None:
            lat, lon, _ = frame.to_geo(inc.x_m, inc.y_m, 0.0)
            inc = replace(inc, lat_deg=lat, lon_deg=lon)
        self._last[inc.incident_id] = inc
        return inc


async def ticker(
    consumer: PipelineConsumer,
    on_result: Callable[[Sequence[ShotLocation], Sequence[Incident]], Any],
    period_s: float = 0.25,
) -> None:
    """Tick the pipeline forever (cancel to stop)."""
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await asyncio.sleep(period_s)
            shots, incidents = consumer.tick()
            if shots or incidents:
                on_result(shots, incidents)


def resume(
    consumer: PipelineConsumer,
    pulses: Sequence[Pulse],
    known_incidents: Callable[[str], bool],
    on_result: Callable[[Sequence[ShotLocation], Sequence[Incident]], Any],
) -> int:
    """After a restart: feed the stored pulses of the recent past (those that may still belong
    to an open shot or incident) through a fresh pipeline so it picks up where the old one
    left off. Incidents already in the review book are not entered again (incident ids are
    deterministic). Returns the number of pulses replayed."""
    n = 0
    for p in sorted(pulses, key=lambda p: (p.t_s, p.pulse_id)):
        shots, incidents = consumer.feed(p)
        fresh = [i for i in incidents if not known_incidents(i.incident_id)]
        if shots or fresh:
            on_result(shots, fresh)
        n += 1
    return n
