"""A sequence number that only grows, across restarts and crashes.

The file holds a high-water mark: numbers are handed out below it, and before the mark is
reached a new one ``block`` higher is written durably (temp, fsync, rename). After a crash the
counter resumes at the stored mark, skipping at most ``block`` numbers and never repeating one:
the server only needs sequence numbers to grow, not to be dense.
"""

from __future__ import annotations

import os
from pathlib import Path

from shotwatch.core.errors import InputError
from shotwatch.sensor.keys import fsync_dir


class SequenceCounter:
    def __init__(self, path: str | Path, *, block: int = 1000) -> None:
        if block < 1:
            raise InputError(str(path), "block", "must be at least 1")
        self.path = Path(path)
        self.block = block
        self._next = self._load()
        self._mark = self._next
        self._persist(self._next + block)

    def _load(self) -> int:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 1
        try:
            value = int(text)
        except ValueError as exc:
            raise InputError(str(self.path), "sequence", f"not an integer: {text!r}") from exc
        if value < 1:
            raise InputError(str(self.path), "sequence", f"must be positive, got {value}")
        return value

    def _persist(self, mark: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{mark}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self._mark = mark

    def next(self) -> int:
        """The next number; strictly greater than every number handed out before."""
        if self._next >= self._mark:
            self._persist(self._next + self.block)
        value = self._next
        self._next += 1
        return value

    @property
    def peek(self) -> int:
        return self._next
