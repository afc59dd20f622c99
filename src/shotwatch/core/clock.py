"""The clock is passed in: algorithms never read the wall clock themselves.

Live runs pass :class:`SystemClock`; replays pass a :class:`ReplayClock` that follows the
data's own timestamps, so replaying a recording runs exactly the live code path.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as POSIX seconds (UTC)."""

    def now(self) -> float: ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> float:
        return time.time()


class ReplayClock:
    """A clock that only moves when told to: it follows the data being replayed.

    ``advance_to`` never moves backwards, so out-of-order input cannot rewind time.
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self._t = float(start_s)

    def now(self) -> float:
        return self._t

    def advance_to(self, t_s: float) -> None:
        if t_s > self._t:
            self._t = float(t_s)

    def advance_by(self, dt_s: float) -> None:
        if dt_s < 0:
            raise ValueError(f"a clock cannot go back: dt_s={dt_s}")
        self._t += dt_s


class ScaledClock:
    """Wall time run faster (or slower) by ``speed``: a recording replayed at ``speed`` x.

    ``now() = data_origin_s + speed * (time.time() - wall_origin_s)``. Every process of a
    replay that shares the two origins agrees on the time, so a server and the sensors that
    report to it can replay a night at 10x through the live code path.
    """

    def __init__(self, data_origin_s: float, speed: float, wall_origin_s: float | None = None):
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.data_origin_s = float(data_origin_s)
        self.speed = float(speed)
        self.wall_origin_s = time.time() if wall_origin_s is None else float(wall_origin_s)

    def now(self) -> float:
        return self.data_origin_s + self.speed * (time.time() - self.wall_origin_s)

    def wall_of(self, t_s: float) -> float:
        """The wall-clock time (POSIX) at which this clock reads ``t_s``."""
        return self.wall_origin_s + (t_s - self.data_origin_s) / self.speed
