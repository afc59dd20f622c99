"""Classify an incident as it enters the review queue, from the evidence the server holds.

Each pulse's audio snippet (1 s before to 1 s after the arrival) is scored by the packaged
pulse model (classify branch); the sensors' scores per shot are fused into one calibrated
probability with its terms (acoustic, spatial, cadence). The console shows the probability,
the label scores and the terms as the explanation. Without audio the incident is left as the
pipeline made it (stated on the incident, not guessed).

Three steps, so the CPU-heavy middle one can run in another process (:class:`ScoringQueue`,
ADR 0098): :func:`snippet_jobs` gathers the snippets from the evidence (on the event loop,
cheap), :func:`score_snippets` runs the model on them (pure: arrays in, decisions out) and
:func:`fuse` builds the scored incident. :func:`classify_incident` runs all three inline; the
queue gives the same result for the same evidence.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from shotwatch.api.media import EvidenceIndex
from shotwatch.classification.fusion import SensorScore, fuse_incident
from shotwatch.classification.model import default_model
from shotwatch.classification.pulse import PulseDecision, classify_pulses
from shotwatch.core.model import Incident, ShotLocation


@dataclass(frozen=True)
class SnippetJob:
    """One sensor's snippet of one shot, with what fusion needs about the sensor."""

    shot_id: str
    sensor: str
    x_m: float
    y_m: float
    z_m: float
    level_db_spl: float | None
    samples: np.ndarray
    rate_hz: float
    onset_s: float
    pulse_id: str = ""


def snippet_jobs(
    inc: Incident, evidence: EvidenceIndex
) -> tuple[list[ShotLocation], list[SnippetJob]]:
    """The incident's shots and the snippets to score (those whose arrival lies inside),
    from what the evidence holds in memory: this runs on the event loop, and a live
    incident's snippets are recent (the store is read only by requests, on threads)."""
    shots = evidence.incident_shots(inc, stored=False)
    jobs: list[SnippetJob] = []
    for shot in shots:
        for pid in shot.pulse_ids:
            pulse = evidence.pulses.get(pid)
            clip = evidence.audio.get(pid)
            if pulse is None or clip is None:
                continue
            onset_s = pulse.t_s - clip.start_s
            if not 0.0 <= onset_s < len(clip.samples) / clip.rate_hz:
                continue
            level = pulse.level_db_spl if math.isfinite(pulse.level_db_spl) else None
            jobs.append(
                SnippetJob(
                    shot.shot_id,
                    pulse.sensor,
                    pulse.x_m,
                    pulse.y_m,
                    pulse.z_m,
                    level,
                    clip.samples,
                    clip.rate_hz,
                    onset_s,
                    pid,
                )
            )
    return shots, jobs


def score_snippets(jobs: Sequence[SnippetJob]) -> list[PulseDecision | None]:
    """The pulse model's decision on each snippet (None where it found nothing to score).
    Pure and picklable: this is what a worker process runs."""
    out: list[PulseDecision | None] = []
    for j in jobs:
        decisions = classify_pulses(j.samples.astype(float), j.rate_hz, [j.onset_s])
        out.append(decisions[0] if decisions else None)
    return out


def warm_worker() -> str:
    """Load the model in a worker process (so the first incident does not pay for it)."""
    return default_model().version


def fuse(
    inc: Incident,
    shots: Sequence[ShotLocation],
    jobs: Sequence[SnippetJob],
    decisions: Sequence[PulseDecision | None],
) -> Incident:
    """The incident with its fused probability and explanation (or "not classified")."""
    scores: dict[str, list[SensorScore]] = {}
    label_sum: dict[str, float] = {}
    n_pulses = 0
    for j, d in zip(jobs, decisions, strict=True):
        if d is None:
            continue
        n_pulses += 1
        for k, v in d.label_scores.items():
            label_sum[k] = label_sum.get(k, 0.0) + v
        scores.setdefault(j.shot_id, []).append(
            SensorScore(
                j.sensor, d.score, d.label, j.x_m, j.y_m, j.z_m, j.level_db_spl, d.model_version
            )
        )
    usable = [s for s in shots if scores.get(s.shot_id)]
    if not usable:
        return not_classified(inc, "no audio snippets attached: not classified")
    fused = fuse_incident(usable, scores)
    label_scores = {k: v / n_pulses for k, v in sorted(label_sum.items())}
    terms = ", ".join(f"{k} {v:+.2f}" for k, v in fused.terms.items())
    info: dict[str, Any] = {
        "scores": {"gunfire (fused)": fused.probability, **label_scores},
        "label": fused.label,
        "explanation": f"log-odds {fused.log_odds:+.2f} = {terms} "
        f"({n_pulses} sensor snippets over {len(usable)} shots; {fused.version})",
        "fusion": fused.to_dict(),
    }
    return replace(
        inc, gunfire_probability=fused.probability, extra={**inc.extra, "classification": info}
    )


def not_classified(inc: Incident, why: str) -> Incident:
    return replace(inc, extra={**inc.extra, "classification": {"scores": {}, "explanation": why}})


def classify_incident(inc: Incident, evidence: EvidenceIndex) -> Incident:
    """Score ``inc`` from its snippets, inline."""
    shots, jobs = snippet_jobs(inc, evidence)
    return fuse(inc, shots, jobs, score_snippets(jobs))


def scoring_pool(workers: int = 1) -> ProcessPoolExecutor:
    """Worker processes for :func:`score_snippets` (spawned: no inherited threads or sockets)."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


@dataclass
class _Pending:
    incident: Incident
    shots: list[ShotLocation]
    jobs: list[SnippetJob]
    future: asyncio.Future[list[PulseDecision | None]] | None
    error: str | None = None
    known: dict[str, PulseDecision | None] = field(default_factory=dict)
    todo: list[SnippetJob] = field(default_factory=list)


class ScoringQueue:
    """Incidents scored off the event loop, handed on in the order they were submitted.

    The snippets are gathered on the loop, scored by ``executor`` (a process pool by default,
    created on first use, so the model's CPU work neither holds the loop nor competes for its
    GIL) and fused on the loop. ``ingest`` receives the scored incidents strictly in
    submission order: an incident scored early waits for those before it, so the review
    queue's arrival order is the pipeline's. An incident whose scoring fails is handed on
    unscored, saying why (never dropped).

    Decisions are remembered per pulse (the model is a pure function of the snippet), so the
    next version of an open incident (ADR 0106) scores only its new shots' snippets.
    """

    def __init__(
        self,
        ingest: Callable[[Incident], Any],
        executor: Executor | None = None,
        *,
        workers: int = 1,
        remember: int = 20_000,
    ) -> None:
        self.ingest = ingest
        self._executor = executor
        self._own = executor is None
        self._workers = workers
        self._pending: deque[_Pending] = deque()
        self.errors: list[str] = []
        self.remember = remember
        self._decided: OrderedDict[str, PulseDecision | None] = OrderedDict()

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = scoring_pool(self._workers)
        return self._executor

    async def warm(self) -> None:
        """Start the workers and load the model in them now (server start-up)."""
        await asyncio.wrap_future(self.executor.submit(warm_worker))

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, inc: Incident, evidence: EvidenceIndex) -> None:
        """Queue ``inc`` for scoring (call on the event loop)."""
        shots, jobs = snippet_jobs(inc, evidence)
        entry = _Pending(inc, shots, jobs, None)
        for j in jobs:
            if j.pulse_id and j.pulse_id in self._decided:
                entry.known[j.pulse_id] = self._decided[j.pulse_id]
            else:
                entry.todo.append(j)
        self._pending.append(entry)
        if entry.todo:
            loop = asyncio.get_running_loop()
            try:
                entry.future = loop.run_in_executor(self.executor, score_snippets, entry.todo)
            except Exception as exc:  # e.g. a broken pool: this one unscored, a new pool next
                entry.error = f"scoring failed: {exc!r}"
                if self._own and self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = None
            else:
                entry.future.add_done_callback(lambda _f: self._hand_on())
                return
        self._hand_on()

    def _hand_on(self) -> None:
        while self._pending and (self._pending[0].future is None or self._pending[0].future.done()):
            e = self._pending.popleft()
            if e.error is not None:
                out = not_classified(e.incident, e.error)
            elif e.future is None:
                out = fuse(e.incident, e.shots, e.jobs, self._merge(e, []))
            else:
                exc = e.future.exception()
                out = (
                    not_classified(e.incident, f"scoring failed: {exc!r}")
                    if exc is not None
                    else fuse(e.incident, e.shots, e.jobs, self._merge(e, e.future.result()))
                )
            try:
                self.ingest(out)
            except Exception as exc:
                self.errors.append(f"{e.incident.incident_id}: {exc!r}")

    def _merge(
        self, e: _Pending, fresh: Sequence[PulseDecision | None]
    ) -> list[PulseDecision | None]:
        """Decisions for all of ``e``'s jobs in order: remembered ones and fresh ones."""
        for j, d in zip(e.todo, fresh, strict=True):
            if j.pulse_id:
                self._decided[j.pulse_id] = d
        while len(self._decided) > self.remember:
            self._decided.popitem(last=False)
        it = iter(fresh)  # e.todo is e.jobs without the remembered ones, in order
        return [
            e.known[j.pulse_id] if j.pulse_id and j.pulse_id in e.known else next(it)
            for j in e.jobs
        ]

    async def settle(self) -> None:
        """Wait until every submitted incident has been handed on."""
        while self._pending:
            head = self._pending[0].future
            if head is not None and not head.done():
                await asyncio.wait([head])
            else:
                await asyncio.sleep(0)  # its hand-on callback is scheduled: let it run

    def close(self) -> None:
        """Stop the worker processes this queue started."""
        if self._own and self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
