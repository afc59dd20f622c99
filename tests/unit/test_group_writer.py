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
