"""Incidents scored off the event loop (issue #5, ADR 0098): a worker process gives exactly
the inline result, and the review queue receives them in the order they were submitted even
when scoring finishes out of order."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tests.integration.test_api_classify import _evidence

from shotwatch.api.classify import ScoringQueue, classify_incident, scoring_pool
from shotwatch.api.media import EvidenceIndex
from shotwatch.core.model import Incident


class HeldExecutor(cf.Executor):
    """Runs nothing until told: lets a test finish jobs in any order."""

    def __init__(self) -> None:
        self.jobs: list[tuple[cf.Future[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        f: cf.Future[Any] = cf.Future()
        self.jobs.append((f, fn, args))
        return f

    def finish(self, i: int, exc: Exception | None = None) -> None:
        f, fn, args = self.jobs[i]
        if exc is not None:
            f.set_exception(exc)
        else:
            f.set_result(fn(*args))


def _incidents(n: int) -> tuple[list[Incident], EvidenceIndex]:
    inc, ev = _evidence("city_single_shooter")
    return [replace(inc, incident_id=f"i{k}") for k in range(n)], ev


def test_worker_process_gives_the_inline_result() -> None:
    (inc,), ev = _incidents(1)
    want = classify_incident(inc, ev)
    got: list[Incident] = []
    pool = scoring_pool(1)

    async def go() -> None:
        q = ScoringQueue(got.append, pool)
        q.submit(inc, ev)
        await q.settle()

    try:
        asyncio.run(go())
    finally:
        pool.shutdown()
    assert got == [want]
    assert want.gunfire_probability is not None
    assert "log-odds" in want.extra["classification"]["explanation"]


def test_hand_on_keeps_submission_order_when_scoring_finishes_backwards() -> None:
    incs, ev = _incidents(4)
    got: list[str] = []
    ex = HeldExecutor()

    async def go() -> None:
        q = ScoringQueue(lambda i: got.append(i.incident_id), ex)
        for i in incs:
            q.submit(i, ev)
        for k in (3, 2, 1):  # the later ones finish first: nothing may jump the queue
            ex.finish(k)
            await asyncio.sleep(0.01)
            assert got == []
        ex.finish(0)
        await q.settle()
        assert len(q) == 0

    asyncio.run(go())
    assert got == ["i0", "i1", "i2", "i3"]


def test_failed_scoring_hands_the_incident_on_unscored() -> None:
    incs, ev = _incidents(2)
    got: list[Incident] = []
    ex = HeldExecutor()

    async def go() -> None:
        q = ScoringQueue(got.append, ex)
        for i in incs:
            q.submit(i, ev)
        ex.finish(0, RuntimeError("worker died"))
        ex.finish(1)
        await q.settle()

    asyncio.run(go())
    assert [i.incident_id for i in got] == ["i0", "i1"]
    assert got[0].gunfire_probability is None
    assert "scoring failed" in got[0].extra["classification"]["explanation"]
    assert got[1] == classify_incident(incs[1], ev)


def test_incident_without_audio_is_not_held_back() -> None:
    incs, ev = _incidents(1)
    ev.audio.clear()
    got: list[Incident] = []

    async def go() -> None:
        q = ScoringQueue(got.append, HeldExecutor())
        q.submit(incs[0], ev)
        await q.settle()

    asyncio.run(go())
    assert "not classified" in got[0].extra["classification"]["explanation"]


class BrokenExecutor(cf.Executor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        raise cf.BrokenExecutor("worker process died")


def test_a_broken_pool_does_not_lose_or_reorder_incidents() -> None:
    incs, ev = _incidents(3)
    got: list[Incident] = []
    held = HeldExecutor()

    async def go() -> None:
        q = ScoringQueue(got.append, held)
        q.submit(incs[0], ev)  # still scoring
        q._executor = BrokenExecutor()
        q.submit(incs[1], ev)  # cannot be scored
        q._executor = held
        q.submit(incs[2], ev)
        assert got == []  # nothing overtakes the first
        held.finish(1)
        held.finish(0)
        await q.settle()

    asyncio.run(go())
    assert [i.incident_id for i in got] == ["i0", "i1", "i2"]
    assert "scoring failed" in got[1].extra["classification"]["explanation"]
    assert got[0] == classify_incident(incs[0], ev) and got[2] == classify_incident(incs[2], ev)


def test_next_version_of_an_open_incident_scores_only_new_snippets() -> None:
    """Decisions are remembered per pulse: the same evidence again costs no scoring, and a
    version with one shot more scores only that shot's snippets; results stay the inline ones."""
    from shotwatch.core.model import ShotLocation

    (inc,), ev = _incidents(1)
    shot = ev.incident_shots(inc)[0]
    pids = list(shot.pulse_ids)
    first = replace(shot, shot_id="s0", pulse_ids=tuple(pids[:-2]))
    ev.add_shot(first)
    v1 = replace(inc, shot_ids=("s0",))
    v2 = inc  # the full shot: two more snippets
    got: list[Incident] = []
    ex = HeldExecutor()

    async def go() -> None:
        q = ScoringQueue(got.append, ex)
        q.submit(v1, ev)
        ex.finish(0)
        await q.settle()
        q.submit(v1, ev)  # nothing new: handed on without the executor
        await q.settle()
        assert len(ex.jobs) == 1
        q.submit(v2, ev)
        assert len(ex.jobs) == 2 and len(ex.jobs[1][2][0]) == len(
            [p for p in pids[-2:] if p in ev.audio]
        )
        ex.finish(1)
        await q.settle()

    asyncio.run(go())
    assert isinstance(shot, ShotLocation)
    assert got == [classify_incident(v1, ev), classify_incident(v1, ev), classify_incident(v2, ev)]
