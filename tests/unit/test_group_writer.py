"""The group-commit writer: lingering gathers a trickle of changes into one transaction, and
a flush does not wait out the linger."""

from __future__ import annotations

import time

from shotwatch.storage.writer import GroupWriter


def _trickle(linger_s: float) -> tuple[list[list[int]], float]:
    batches: list[list[int]] = []
    w: GroupWriter[int] = GroupWriter(
        batches.append, lambda c, e: None, name="test-writer", linger_s=linger_s
    )
    for i in range(20):
        w.put(i)
        time.sleep(0.002)
    t0 = time.monotonic()
    assert w.flush(timeout_s=30)
    waited = time.monotonic() - t0
    w.close()
    return batches, waited


def test_a_trickle_lingers_into_few_transactions_in_order() -> None:
    lingering, _ = _trickle(0.5)
    eager, _ = _trickle(0.0)
    assert [c for b in lingering for c in b] == list(range(20))
    assert [c for b in eager for c in b] == list(range(20))
    assert len(lingering) <= 2
    assert len(eager) >= 10


def test_a_flush_cuts_the_linger_short() -> None:
    batches, waited = _trickle(20.0)
    assert [c for b in batches for c in b] == list(range(20))
    assert waited < 2.0  # not the 20 s linger


class _Watched:
    """The writer's queue, recording when the writer thread takes from it."""

    def __init__(self, q: object) -> None:
        self.q = q
        self.takes: list[float] = []

    def put(self, item: object) -> None:
        self.q.put(item)  # type: ignore[attr-defined]

    def get(self, *a: object, **k: object) -> object:
        item = self.q.get(*a, **k)  # type: ignore[attr-defined]
        self.takes.append(time.monotonic())
        return item

    def get_nowait(self) -> object:
        item = self.q.get_nowait()  # type: ignore[attr-defined]
        self.takes.append(time.monotonic())
        return item


def test_a_lingering_writer_is_not_woken_by_each_change() -> None:
    """While it lingers the thread sleeps: the changes put meanwhile are taken together when
    the linger ends (each wake-up for one change took the interpreter lock from the loop)."""
    batches: list[list[int]] = []
    w: GroupWriter[int] = GroupWriter(batches.append, lambda c, e: None, name="t", linger_s=0.4)
    watched = _Watched(w._q)
    w._q = watched  # type: ignore[assignment]
    w.put(-1)  # wake it (it waits on the original queue's get) with a first change
    time.sleep(0.05)
    t0 = time.monotonic()
    for i in range(10):
        w.put(i)
        time.sleep(0.01)
    time.sleep(0.5)
    w.close()
    assert [c for b in batches for c in b] == [-1, *range(10)]
    assert len(batches) == 1
    assert watched.takes and min(watched.takes) >= t0 + 0.2  # nothing taken mid-linger


def test_a_backlog_larger_than_a_batch_is_not_lingered_over_again() -> None:
    """More than ``max_batch`` waiting: the next batch goes at once, not after another linger
    (else a lingering writer could never commit more than max_batch per linger)."""
    batches: list[list[int]] = []
    w: GroupWriter[int] = GroupWriter(
        batches.append, lambda c, e: None, name="t", linger_s=0.5, max_batch=10
    )
    for i in range(35):
        w.put(i)
    t0 = time.monotonic()
    while sum(len(b) for b in batches) < 35 and time.monotonic() - t0 < 5.0:
        time.sleep(0.01)
    took = time.monotonic() - t0
    w.close()
    assert [c for b in batches for c in b] == list(range(35))
    assert [len(b) for b in batches] == [10, 10, 10, 5]
    assert took < 1.0  # one linger, not four
