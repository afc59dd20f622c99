"""Evidence that a located pulse set is one real source, as pure functions.

A set of arrivals that fits one source might still be chance: unrelated impulses and echoes
line up now and then, more often the busier the sensors are. Two tests, both on what the
network around the source reported near the predicted arrivals:

* :func:`enough_heard`: a real source is heard by most sensors closer to it than the ones
  that reported it; a chance alignment usually sits among sensors that stayed silent. A late
  non-line-of-sight pulse counts as "not silent" (the sensor was not deaf to it).
* :func:`beats_chance`: each sensor near the source has a local pulse rate; the number of
  agreeing sensors must exceed what those rates give by chance inside the acceptance window by
  ``z`` standard deviations (busy, echo-filled periods demand more sensors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Neighbourhood:
    """Sensor positions (all sensors) and the pulses (time, sensor index) around a source."""

    sx: NDArray[np.float64]
    sy: NDArray[np.float64]
    sz: NDArray[np.float64]
    t: NDArray[np.float64]
    s: NDArray[np.int64]
    c_mps: float
    #: which of those pulses belong to shots (final or forming): the sounds that can mask
    in_shot: NDArray[np.bool_] | None = None

    def distances(self, x: float, y: float, z: float) -> NDArray[np.float64]:
        return np.sqrt((self.sx - x) ** 2 + (self.sy - y) ** 2 + (self.sz - z) ** 2)


def enough_heard(
    env: Neighbourhood,
    source: tuple[float, float, float, float],
    heard: Sequence[int],
    *,
    early_s: float,
    silence_s: float,
    min_fraction: float,
    masked_s: float = 0.0,
) -> bool:
    """Did most sensors nearer the source (``source``: x, y, z, origin time) than the
    reporting ones report *something* from
    ``early_s`` before to ``silence_s`` after their predicted arrival?

    Among sensors within the median reporting distance at least ``min_fraction`` must have;
    within the reporting disk (:func:`_outer_radius`) a share rising from
    ``0.75 min_fraction`` (five or more reporting sensors) towards all of them (three),
    because few arrivals fit almost any chance alignment.

    A sensor that reported a pulse of some shot in the ``masked_s`` before its predicted
    arrival is left out either way: that shot's reverberation (or the sensor's dead time after
    a detection) can hide a pulse, so its silence says nothing.
    """
    if not heard:
        return False
    x, y, z, t0 = source
    d = env.distances(x, y, z)
    h = np.asarray(heard, dtype=np.int64)
    arrival = t0 + d / env.c_mps
    dt = env.t - arrival[env.s]
    hit = (dt >= -early_s) & (dt <= silence_s)
    responsive = np.zeros(len(d), dtype=bool)
    responsive[env.s[hit]] = True
    responsive[h] = True
    usable = np.ones(len(d), dtype=bool)
    if masked_s > 0 and env.in_shot is not None:
        busy = (dt < -early_s) & (dt >= -masked_s) & env.in_shot
        usable[env.s[busy]] = False
        usable |= responsive
    r_max = _outer_radius(d[h])
    near = (d <= r_max + 1e-6) & usable
    shortfall = max(0, 5 - len(h))
    need = 0.75 * min_fraction + (1 - 0.75 * min_fraction) * min(1.0, shortfall / 2)
    if int(responsive[near].sum()) < need * int(near.sum()) - 1e-9:
        return False
    inner = (d <= float(np.median(d[h])) + 1e-6) & usable
    return int(responsive[inner].sum()) >= min_fraction * int(inner.sum()) - 1e-9


def beats_chance(
    env: Neighbourhood,
    source: tuple[float, float, float, float],
    heard: Sequence[int],
    *,
    window_s: float,
    z_sigma: float,
    rate_span_s: float = 1.0,
) -> bool:
    """Is the number of agreeing sensors more than the local pulse rates give by chance?

    Sensor ``j`` within the reporting radius has rate ``lambda_j`` (its pulses within
    ``rate_span_s`` of its predicted arrival, the shot's own excluded) and so a chance
    ``p_j = 1 - exp(-lambda_j window_s)`` of holding some pulse in the acceptance window.
    """
    if not heard:
        return False
    x, y, z, t0 = source
    d = env.distances(x, y, z)
    h = np.asarray(heard, dtype=np.int64)
    near = d <= _outer_radius(d[h]) + 1e-6
    arrival = t0 + d / env.c_mps
    close = np.abs(env.t - arrival[env.s]) <= rate_span_s
    counts = np.bincount(env.s[close], minlength=len(d)).astype(float)
    counts[h] = np.maximum(counts[h] - 1.0, 0.0)
    rate = counts[near] / (2.0 * rate_span_s)
    p = 1.0 - np.exp(-rate * window_s)
    mean = float(p.sum())
    sd = math.sqrt(float(np.sum(p * (1.0 - p))))
    return len(h) >= mean + z_sigma * sd


def _outer_radius(d_heard: NDArray[np.float64]) -> float:
    """The reporting disk's radius: the farthest reporting sensor for small sets; for larger
    ones the 80th percentile, so that one far member (a late path, or a pulse of something
    else that fitted) cannot pull half the city into the disk."""
    if len(d_heard) < 6:
        return float(d_heard.max())
    return float(np.quantile(d_heard, 0.8))


def chance_floor(p: NDArray[np.float64], trials: int, alpha: float) -> int:
    """How many sensors beyond a triple must agree with the best of ``trials`` candidate
    sources before chance is an unlikely explanation.

    Each sensor ``j`` holds a pulse inside the agreement window by chance with probability
    ``p_j``; the chance count is about Poisson with mean ``sum(p)``. Returns the smallest
    ``k`` with ``trials * P(count >= k) <= alpha`` (the search tried ``trials`` sources, so
    the best of them is held to that many times the single-source standard).
    """
    mu = float(np.sum(p))
    k = 0
    tail = 1.0  # P(count >= k)
    term = math.exp(-mu)  # P(count == k)
    while trials * tail > alpha and k <= len(p):
        tail = max(0.0, tail - term)
        k += 1
        term *= mu / k
    return k


def echo_of(
    later: dict[int, tuple[float, float]],
    earlier: dict[int, tuple[float, float]],
    *,
    tail_s: float,
) -> bool:
    """Is a pulse set (``later``: sensor -> (time, level dB)) made mostly of pulses in the
    reverberation tail of a shot heard before it (``earlier``) at the same sensors?

    At least half of the set's sensors (two or more) heard the earlier shot up to ``tail_s``
    before. The caller decides what that means: another round from the same place repeats the
    sensors too, so it is tested together with position and support.
    """
    shared = sum(
        1 for s, (t, _lv) in later.items() if s in earlier and 0.0 < t - earlier[s][0] <= tail_s
    )
    return shared >= max(2, len(later) / 2)
