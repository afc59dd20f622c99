"""Group commit on a writer thread: the mechanism under the server's stores (ADR 0099, 0108).

Callers (the server's event loop) only :meth:`GroupWriter.put` a change; one thread takes
every change waiting at that moment and hands the batch, in order, to ``commit`` (one
transaction). A batch that fails is retried with back-off, then committed change by change
so that one bad change cannot take the others with it; ``on_error`` hears about each change
that still fails. :meth:`flush` waits until everything put before it is done (committed or
failed); :meth:`close` finishes the queue and stops the thread.

``linger_s`` lets the thread wait that long after the first change of a batch for more to
join it (a flush or close cuts the wait short: each puts a marker that ends the batch):
under a steady trickle of changes one transaction then carries several, where each alone
paid the statement and round-trip overhead on a thread that shares the interpreter lock
with the event loop. While it lingers the thread sleeps on an event that only a flush or
close sets, not on the queue: waiting on the queue, every change put woke it to take that
one change, each wake-up a trip for the interpreter lock away from the event loop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_STOP = object()
_WAKE = object()  # put by flush: a lingering batch is committed at once


def _marker(item: object) -> bool:
    return item is _STOP or item is _WAKE


class GroupWriter(Generic[T]):
    def __init__(
        self,
        commit: Callable[[list[T]], None],
        on_error: Callable[[T, Exception], None],
        *,
        name: str,
        max_batch: int = 1000,
        retries: int = 3,
        linger_s: float = 0.0,
    ) -> None:
        self._commit = commit
        self._on_error = on_error
        self.max_batch = max_batch
        self.retries = retries
        self.linger_s = linger_s
        self.batches = 0  # batches committed whole
        self.changes = 0  # changes committed
        self._q: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._queued = 0
        self._done = 0
        self._hurry = threading.Event()  # set by flush and close: stop lingering
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, change: T) -> None:
        with self._cond:
            self._queued += 1
        self._q.put(change)

    def idle(self) -> bool:
        """Everything put so far is done."""
        with self._cond:
            return self._done >= self._queued

    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until everything put before this call is done; False on timeout."""
        with self._cond:
            target = self._queued
            if self._done >= target:
                return True
        if self.linger_s > 0.0:
            self._q.put(_WAKE)
            self._hurry.set()
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= target, timeout_s)

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._hurry.set()
            self._thread.join()

    def _run(self) -> None:
        stop = False
        full = False  # the last batch was cut at max_batch: more is waiting, no linger
        while not stop:
            batch = [self._q.get()]
            if self.linger_s > 0.0 and not full and not _marker(batch[0]):
                self._hurry.wait(self.linger_s)
                self._hurry.clear()  # a flush that comes later puts its marker first
            while len(batch) < self.max_batch and not _marker(batch[-1]):
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            full = len(batch) >= self.max_batch
            stop = any(c is _STOP for c in batch)
            changes: list[T] = [c for c in batch if not _marker(c)]  # type: ignore[misc]
            if changes:
                self._write(changes)
            with self._cond:
                self._done += len(changes)
                self._cond.notify_all()

    def _write(self, batch: list[T]) -> None:
        for attempt in range(self.retries):
            try:
                self._commit(batch)
                self.batches += 1
                self.changes += len(batch)
                return
            except Exception:
                time.sleep(0.05 * 2**attempt)
        for change in batch:  # isolate the change that fails
            try:
                self._commit([change])
                self.changes += 1
            except Exception as exc:
                self._on_error(change, exc)
