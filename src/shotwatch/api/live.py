"""The live pipeline behind the server: verified pulses in, shots and incidents out.

:class:`PipelineConsumer` adapts :class:`shotwatch.pipeline.Pipeline` (association, location,
incident building; results written to its sink, e.g. the database) to the server's
``PulseConsumer`` port, tapping the located shots for the console's evidence. The server calls
:meth:`tick` periodically (:func:`ticker`) so shots and incidents complete when their waiting
window is over even if no further pulse arrives.

An incident closes only ``incidents.max_gap_s`` (30 s by default) after its last shot. With
``preliminary`` on (as ``shotwatch serve`` runs, ADR 0106), each newly located shot also
yields the open incident it joined, as it stands (``extra["open"] = True``, same incident id
as the final one), so the review queue has it within the association wait, not 30 s later;
the closed incident then arrives as the next machine version.
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

    def feed(self, pulse: Pulse) -> tuple[Sequence[ShotLocation], Sequence[Incident]]:
        incidents = list(self.pipeline.feed(pulse))
        shots = self.tap.take()
        return shots, incidents + self._open_versions(shots)

    def tick(self) -> tuple[Sequence[ShotLocation], Sequence[Incident]]:
        """Let time pass: completes held shots and closes idle incidents (Pipeline.tick)."""
        incidents = list(self.pipeline.tick())
        shots = self.tap.take()
        return shots, incidents + self._open_versions(shots)

    def _open_versions(self, shots: Sequence[ShotLocation]) -> list[Incident]:
        """The still-open incidents that these new shots joined (preliminary versions)."""
        builder = self.pipeline.incident_builder
        open_incidents = getattr(builder, "open_incidents", None)
        if not self.preliminary or not shots or open_incidents is None:
            return []
        new = {s.shot_id for s in shots}
        frame = self.pipeline.frame
        out = []
        for built in open_incidents(created_s=self.pipeline.clock.now()):
            if not new.intersection(built.shot_ids):
                continue
            inc = replace(built, extra={**built.extra, "open": True})
            if inc.lat_deg is None and frame is not None:
                lat, lon, _ = frame.to_geo(inc.x_m, inc.y_m, 0.0)
                inc = replace(inc, lat_deg=lat, lon_deg=lon)
            out.append(inc)
        return out


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
