"""A simulated sensor network for the server benchmarks: physical arrivals, real association.

The server benches (bench/nye_replay.py) used to stand in for association with "every three
reports make an incident". With ``--pipeline real`` they instead post what a network of sensors
would send for each shot, and the server runs the production pipeline (association, location,
incident building, preliminary incidents) on it:

* sensors on a jittered square grid (``spacing_m``) over ``side_m`` x ``side_m``;
* each incident is one shot at a seeded position inside the network, kept
  ``min_separation_m`` from every incident of the previous ``separation_window_s`` (incidents
  closer than the incident builder's limits would rightly be one incident);
* every sensor within ``hear_m`` reports it: arrival = fire time + slant distance / c +
  Gaussian pick error (``pick_sigma_s``); the report is sent when its 1 s of audio after the
  onset has been recorded (``post_s`` after the arrival).

The truth (positions and fire times) is kept by the bench only, for matching the server's
incidents afterwards (evaluation code).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Report:
    serial: str
    x_m: float
    y_m: float
    z_m: float
    arrival_s: float  # data time


@dataclass(frozen=True)
class TruthShot:
    n: int
    x_m: float
    y_m: float
    t_fire_s: float
    reports: tuple[Report, ...]

    @property
    def last_arrival_s(self) -> float:
        return max(r.arrival_s for r in self.reports)


class ShotNetwork:
    def __init__(
        self,
        *,
        side_m: float = 12_000.0,
        spacing_m: float = 500.0,
        hear_m: float = 750.0,
        jitter_m: float = 60.0,
        height_m: float = 6.0,
        c_mps: float = 343.0,
        pick_sigma_s: float = 0.0005,
        min_separation_m: float = 500.0,
        separation_window_s: float = 60.0,
        seed: int = 7,
    ) -> None:
        rng = np.random.default_rng(seed)
        n = int(side_m // spacing_m) + 1
        g = (np.arange(n) - (n - 1) / 2) * spacing_m
        xx, yy = np.meshgrid(g, g)
        self.x = xx.ravel() + rng.uniform(-jitter_m, jitter_m, xx.size)
        self.y = yy.ravel() + rng.uniform(-jitter_m, jitter_m, yy.size)
        self.z = np.full(self.x.size, height_m)
        self.serials = [f"SN-{i:04d}" for i in range(self.x.size)]
        self.half = (n - 1) / 2 * spacing_m
        self.hear_m = hear_m
        self.c = c_mps
        self.pick_sigma_s = pick_sigma_s
        self.min_sep = min_separation_m
        self.window_s = separation_window_s
        self._rng = np.random.default_rng(seed + 1)
        self._recent: deque[TruthShot] = deque()

    def shot(
        self, n: int, t_fire_s: float, accept: Callable[[float, float], bool] | None = None
    ) -> TruthShot:
        """Incident ``n``: one shot fired at ``t_fire_s`` somewhere clear of recent ones (and
        where ``accept(x, y)``, e.g. on land)."""
        while self._recent and self._recent[0].t_fire_s < t_fire_s - self.window_s:
            self._recent.popleft()
        inner = self.half - self.hear_m / 2  # well inside the network: every shot is covered
        for _ in range(1000):
            x, y = self._rng.uniform(-inner, inner, 2)
            if all(math.hypot(x - s.x_m, y - s.y_m) >= self.min_sep for s in self._recent) and (
                accept is None or accept(float(x), float(y))
            ):
                break
        else:
            raise RuntimeError("network too small for the incident rate: no clear position")
        d = np.sqrt((self.x - x) ** 2 + (self.y - y) ** 2 + (self.z - 1.5) ** 2)
        heard = np.flatnonzero(d <= self.hear_m)
        t = t_fire_s + d[heard] / self.c + self._rng.normal(0, self.pick_sigma_s, heard.size)
        reports = tuple(
            sorted(
                (
                    Report(self.serials[i], float(self.x[i]), float(self.y[i]), 6.0, float(ti))
                    for i, ti in zip(heard.tolist(), t.tolist(), strict=True)
                ),
                key=lambda r: r.arrival_s,
            )
        )
        shot = TruthShot(n, float(x), float(y), t_fire_s, reports)
        self._recent.append(shot)
        return shot

    def level_dbfs(self, report: Report, shot: TruthShot) -> float:
        """A muzzle blast's peak at the sensor: 150 dB SPL at 1 m, spherical spreading, as dBFS
        of a 120 dB SPL full scale (clipped at 0)."""
        d = math.hypot(report.x_m - shot.x_m, report.y_m - shot.y_m)
        return min(0.0, 150.0 - 20.0 * math.log10(max(d, 1.0)) - 120.0)


def match(
    truth: list[TruthShot], x_m: float, y_m: float, start_s: float, radius_m: float = 150.0
) -> TruthShot | None:
    """The truth shot a server incident is about: nearest within ``radius_m`` fired within
    5 s of the incident's start (evaluation only)."""
    best, best_d = None, radius_m
    for s in reversed(truth):
        if s.t_fire_s < start_s - 5.0:
            break
        if abs(s.t_fire_s - start_s) > 5.0:
            continue
        d = math.hypot(s.x_m - x_m, s.y_m - y_m)
        if d <= best_d:
            best, best_d = s, d
    return best
