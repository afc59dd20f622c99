"""The associator's pulse buffer: time-ordered numpy columns with stable handles.

Pulses arrive nearly in time order. They are kept sorted by arrival time in growable arrays
(every window query is then one binary search) and addressed by a *handle*, a sequence
number that never changes, so hypotheses can hold on to their pulses while the buffer
shifts (a rare out-of-order insert) or drops its old head (compaction).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from shotwatch.core.model import Pulse

#: What a pulse is to the associator (``PulseStore.owner``).
FREE = -1  # waiting: a partner for new shots
USED = -2  # part of a final shot
SPENT = -3  # judged an echo of a shot at its sensor: never a partner again
CLAIMED = -4  # a member of one or more open hypotheses (still a partner for new ones)


class PulseStore:
    """Time-sorted pulse columns; ``pos(handle)`` gives a pulse's current row."""

    def __init__(self, capacity: int = 1024) -> None:
        self.t = np.zeros(capacity)
        self.s = np.zeros(capacity, dtype=np.int64)
        self.owner = np.full(capacity, FREE, dtype=np.int64)
        self.handle = np.zeros(capacity, dtype=np.int64)
        self.level = np.zeros(capacity)
        #: time since the previous pulse at the same sensor (inf for its first)
        self.gap = np.zeros(capacity)
        self._last_t: dict[int, float] = {}
        self.pulses: list[Pulse | None] = [None] * capacity
        self.head = 0  # first live row
        self.n = 0  # rows in use (live rows are head..n-1)
        self._next_handle = 0
        self._base = 0  # handle of _row[0]
        self._row = np.zeros(capacity, dtype=np.int64)  # handle - _base -> row

    # ------------------------------------------------------------------ access
    def pos(self, handle: int) -> int:
        return int(self._row[handle - self._base])

    def rows(self, handles: NDArray[np.int64]) -> NDArray[np.int64]:
        return self._row[handles - self._base]

    def pulse(self, handle: int) -> Pulse:
        p = self.pulses[self.pos(handle)]
        assert p is not None
        return p

    def window(self, t_lo: float, t_hi: float) -> tuple[int, int]:
        """Rows ``[a, b)`` whose time lies in ``[t_lo, t_hi]``."""
        ts = self.t[self.head : self.n]
        a = self.head + int(np.searchsorted(ts, t_lo, "left"))
        b = self.head + int(np.searchsorted(ts, t_hi, "right"))
        return a, b

    def __len__(self) -> int:
        return self.n - self.head

    # ------------------------------------------------------------------ changes
    def add(self, pulse: Pulse, sensor: int, level_db: float) -> tuple[int, bool]:
        """Store ``pulse``; returns its handle and whether it arrived out of time order."""
        if self.n == len(self.t):
            self._grow()
        h = self._next_handle
        self._next_handle += 1
        k = h - self._base
        if k >= len(self._row):
            self._row = np.concatenate((self._row, np.zeros(len(self._row), dtype=np.int64)))
        n = self.n
        late = n > self.head and pulse.t_s < self.t[n - 1]
        row = n
        if late:
            row = self.head + int(np.searchsorted(self.t[self.head : n], pulse.t_s, "right"))
            for col in (self.t, self.s, self.owner, self.handle, self.level, self.gap):
                col[row + 1 : n + 1] = col[row:n].copy()
            self.pulses[row + 1 : n + 1] = self.pulses[row:n]
            self._row[self.handle[row + 1 : n + 1] - self._base] += 1
        self.t[row] = pulse.t_s
        self.s[row] = sensor
        self.owner[row] = FREE
        self.handle[row] = h
        self.level[row] = level_db
        last = self._last_t.get(sensor, -np.inf)
        self.gap[row] = pulse.t_s - last if pulse.t_s >= last else 0.0
        self._last_t[sensor] = max(last, pulse.t_s)
        self.pulses[row] = pulse
        self._row[k] = row
        self.n += 1
        return h, late

    def drop_before(self, row: int) -> None:
        """Forget rows before ``row`` (they are no longer addressed by anyone)."""
        row = min(max(row, self.head), self.n)
        self.pulses[self.head : row] = [None] * (row - self.head)
        self.head = row

    def _grow(self) -> None:
        live = self.n - self.head
        cap = len(self.t)
        if live * 2 > cap:
            cap *= 2
        h, n = self.head, self.n

        def move(col: NDArray[np.generic]) -> NDArray[np.generic]:
            out = np.zeros(cap, dtype=col.dtype)
            out[:live] = col[h:n]
            return out

        self.t = move(self.t)  # type: ignore[assignment]
        self.s = move(self.s)  # type: ignore[assignment]
        self.owner = move(self.owner)  # type: ignore[assignment]
        self.handle = move(self.handle)  # type: ignore[assignment]
        self.level = move(self.level)  # type: ignore[assignment]
        self.gap = move(self.gap)  # type: ignore[assignment]
        pulses: list[Pulse | None] = [None] * cap
        pulses[:live] = self.pulses[h:n]
        self.pulses = pulses
        self.head, self.n = 0, live
        # handles of dropped rows are never asked for again: rebase the handle -> row map
        first = int(self.handle[:live].min()) if live else self._next_handle
        keep = self._row[first - self._base : self._next_handle - self._base] - h
        self._row = np.zeros(max(2 * len(keep), 1024), dtype=np.int64)
        self._row[: len(keep)] = keep
        self._base = first
