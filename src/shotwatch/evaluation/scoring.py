"""Distances from located shots to the truth: surveyed positions (live-fire tests) or the
simulator's own events. Evaluation code: reads truth only after the pipeline has finished."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shotwatch.core.errors import InputError
from shotwatch.core.model import ShotLocation

#: A located shot further than this from the truth counts as spurious (issue 2's definition).
SPURIOUS_M = 25.0


@dataclass(frozen=True, slots=True)
class SurveyTruth:
    """One live-fire test's ground truth (``<test>.survey.json``)."""

    test: str
    x_m: float
    y_m: float
    z_m: float
    rounds: int
    firearm: str


def read_survey(test_dir: str | Path, *, name: str | None = None) -> SurveyTruth:
    """The surveyed shooter position of one test folder; errors name the file and field."""
    d = Path(test_dir)
    files = sorted(d.glob("*.survey.json"))
    if not files:
        raise InputError(str(d), "survey.json", "no survey file in this test folder")
    path = files[0]
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(str(path), "json", f"unreadable: {exc}") from exc
    try:
        loc = data["survey_location"]
        return SurveyTruth(
            test=name or d.name,
            x_m=float(loc["x"]),
            y_m=float(loc["y"]),
            z_m=float(loc["z"]),
            rounds=int(data["num_rounds"]),
            firearm=str(data.get("firearm", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(str(path), "survey_location/num_rounds", f"missing or bad: {exc}") from exc


@dataclass
class Score:
    """Located shots against the truth for one test, scenario or the whole run."""

    rounds_fired: int = 0
    shots_located: int = 0
    errors_m: list[float] = field(default_factory=list)  # one per located shot matched to truth
    spurious: int = 0  # shots > SPURIOUS_M off, or beyond the rounds fired

    def add(self, other: Score) -> None:
        self.rounds_fired += other.rounds_fired
        self.shots_located += other.shots_located
        self.errors_m += other.errors_m
        self.spurious += other.spurious

    @property
    def good(self) -> list[float]:
        return sorted(e for e in self.errors_m if e <= SPURIOUS_M)

    def summary(self) -> dict[str, float | int | None]:
        good = self.good
        located = min(len(good), self.rounds_fired)
        return {
            "rounds_fired": self.rounds_fired,
            "shots_located": self.shots_located,
            "rounds_located": located,
            "located_share": located / self.rounds_fired if self.rounds_fired else None,
            "median_m": percentile(good, 50),
            "p90_m": percentile(good, 90),
            "within_15m_share": (
                sum(e <= 15.0 for e in self.errors_m) / len(self.errors_m)
                if self.errors_m
                else None
            ),
            "spurious": self.spurious,
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None when empty."""
    if not values:
        return None
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def score_against_point(
    shots: Iterable[ShotLocation], x_m: float, y_m: float, rounds_fired: int
) -> Score:
    """Horizontal distance of every shot to one surveyed position (a live-fire test).

    The closest ``rounds_fired`` shots within 25 m are the located rounds; shots beyond
    them, or further than 25 m, are spurious (issue 2). ``errors_m`` keeps the located
    rounds and the far shots, never the extra near ones, so a test with one extra shot
    cannot make up for another test's missed round."""
    shots = list(shots)
    errors = sorted(math.hypot(s.x_m - x_m, s.y_m - y_m) for s in shots)
    good = [e for e in errors if e <= SPURIOUS_M]
    far = [e for e in errors if e > SPURIOUS_M]
    spurious = len(far) + max(0, len(good) - rounds_fired)
    return Score(rounds_fired, len(shots), good[:rounds_fired] + far, spurious)


@dataclass(frozen=True, slots=True)
class TruthEvent:
    """A true gunshot: when and where (from the simulator's truth)."""

    t_s: float
    x_m: float
    y_m: float


def score_against_events(
    shots: Iterable[ShotLocation], events: Sequence[TruthEvent], *, max_dt_s: float = 0.5
) -> Score:
    """Match each shot to the nearest unused true gunshot by origin time (within
    ``max_dt_s``), then measure the horizontal distance; unmatched shots are spurious."""
    used: set[int] = set()
    score = Score(rounds_fired=len(events))
    for s in sorted(shots, key=lambda s: s.t0_s):
        score.shots_located += 1
        best, best_d = None, math.inf
        for i, ev in enumerate(events):
            if i in used or abs(ev.t_s - s.t0_s) > max_dt_s:
                continue
            d = math.hypot(ev.x_m - s.x_m, ev.y_m - s.y_m)
            if d < best_d:
                best, best_d = i, d
        if best is None:
            score.spurious += 1
            continue
        used.add(best)
        score.errors_m.append(best_d)
        if best_d > SPURIOUS_M:
            score.spurious += 1
    return score
