"""A streaming second look at located shots: reverberation duplicates and echo sets.

The associator (ADR 0012) decides one anchor at a time. Two kinds of false shot survive it on
the Pittsburgh data, and both are visible only by comparing a new shot with shots already
reported in the last few seconds (ADR 0013):

* **Reverberation duplicate.** Shortly after a real shot, its reverberation tail at the same
  sensors forms a second set located near (< 25 m) the first. Another round from the same
  place arrives at every shared sensor with one common lag (Pittsburgh: lag spread <= 6 ms
  interquartile); reverberation lags scatter by tens of milliseconds. A later, less widely
  heard shot near a reported one whose shared-sensor lags spread by more than the pick
  tolerance is dropped.
* **Echo set.** A set located far away, made mostly of pulses that arrive at their sensors
  within the echo tail after a reported shot's pulses at the same sensors, and heard by
  clearly fewer sensors than that shot (``echo_set_support_ratio``), is the reported shot's
  echoes (or a mixture of its rounds) lined up by chance, not a second source.

Only shots already reported are compared (no waiting), so the filter adds no latency.
Nothing here reads ground truth.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from shotwatch.core.model import Pulse, ShotLocation
from shotwatch.core.settings import Settings

#: A located shot further than this from another is a different place (issue 2's scale).
SAME_PLACE_M = 25.0


@dataclass(frozen=True)
class _Reported:
    shot: ShotLocation
    arrivals: dict[str, float]  # sensor -> arrival time of its (inlier) pulse


@dataclass
class ShotFilterStats:
    kept: int = 0
    reverberation_duplicates: int = 0
    echo_sets: int = 0


class ShotFilter:
    """Feed shots in the order they are reported; :meth:`keep` says whether each stands."""

    def __init__(self, settings: Settings | None = None) -> None:
        s = settings or Settings()
        self.tol_s = s.association.pick_tolerance_s
        self.tail_s = s.association.echo_tail_s
        self.support_ratio = s.location.echo_set_support_ratio
        self.stats = ShotFilterStats()
        self._recent: deque[_Reported] = deque()
        # the latest drops, for reports; bounded so a long-running server does not grow
        self.dropped: deque[tuple[ShotLocation, str]] = deque(maxlen=10_000)

    def keep(self, shot: ShotLocation, pulses: Mapping[str, Pulse]) -> bool:
        """Whether ``shot`` stands; ``pulses`` maps pulse id to pulse (its own at least)."""
        out = set(shot.outliers)
        arrivals: dict[str, float] = {}
        for pid in shot.pulse_ids:
            p = pulses.get(pid)
            if p is not None and pid not in out:
                arrivals[p.sensor] = p.t_s
        while self._recent and shot.t0_s - self._recent[0].shot.t0_s > self.tail_s:
            self._recent.popleft()
        reason = self._reason(shot, arrivals)
        if reason is not None:
            if reason == "reverberation duplicate":
                self.stats.reverberation_duplicates += 1
            else:
                self.stats.echo_sets += 1
            self.dropped.append((shot, reason))
            return False
        self.stats.kept += 1
        self._recent.append(_Reported(shot, arrivals))
        return True

    def _reason(self, b: ShotLocation, arr_b: dict[str, float]) -> str | None:
        n_b = len(arr_b)
        if n_b == 0:
            return None
        for rec in self._recent:
            a = rec.shot
            dt0 = b.t0_s - a.t0_s
            if not 0.0 < dt0 <= self.tail_s:
                continue
            dist = math.hypot(b.x_m - a.x_m, b.y_m - a.y_m)
            unc = _finite(a.uncertainty_m) + _finite(b.uncertainty_m)
            lags = np.array([t - rec.arrivals[s] for s, t in arr_b.items() if s in rec.arrivals])
            if dist <= max(SAME_PLACE_M, 3.0 * unc):
                # Near: a repeat from the same place has one common lag at every sensor.
                # Reverberation is heard by fewer sensors than the direct shot it follows.
                if len(lags) >= 3 and len(lags) >= 0.5 * n_b and n_b < len(rec.arrivals):
                    q75, q25 = np.percentile(lags, [75, 25])
                    if float(q75 - q25) > self.tol_s:
                        return "reverberation duplicate"
                continue
            in_tail = int(np.sum((lags > 0.0) & (lags <= self.tail_s)))
            if in_tail >= 0.5 * n_b and n_b <= self.support_ratio * len(rec.arrivals):
                return "echo set"
        return None


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 0.0
