"""Ground truth stays out of the product: no pipeline module imports the evaluation package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shotwatch.core.model import ShotLocation
from shotwatch.evaluation.scoring import (
    TruthEvent,
    percentile,
    score_against_events,
    score_against_point,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "shotwatch"
PRODUCT = ["pipeline.py", "association", "location", "incidents", "io", "storage", "signal", "core"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_product_module_imports_evaluation() -> None:
    files = []
    for part in PRODUCT:
        p = SRC / part
        files += [p] if p.is_file() else sorted(p.rglob("*.py"))
    assert len(files) > 10
    offenders = [
        str(f) for f in files if any(n.startswith("shotwatch.evaluation") for n in _imports(f))
    ]
    assert offenders == []


def _shot(x: float, y: float, t0: float = 0.0) -> ShotLocation:
    return ShotLocation(f"s{x}-{y}-{t0}", t0, x, y, 0.0, (), (), {}, 0.0, 1.0, None, None, 2, 1.0)


def test_score_against_a_surveyed_point() -> None:
    shots = [_shot(3.0, 4.0), _shot(0.0, 1.0), _shot(30.0, 40.0)]
    s = score_against_point(shots, 0.0, 0.0, rounds_fired=3)
    assert s.errors_m == [1.0, 5.0, 50.0]
    assert s.spurious == 1
    summ = s.summary()
    assert summ["rounds_located"] == 2 and summ["median_m"] == pytest.approx(3.0)
    # more good shots than rounds fired: the extra ones are spurious
    assert score_against_point([_shot(1, 0), _shot(0, 1)], 0, 0, rounds_fired=1).spurious == 1


def test_an_extra_shot_in_one_test_does_not_make_up_for_a_miss_in_another() -> None:
    total = score_against_point([_shot(1, 0), _shot(0, 2)], 0, 0, rounds_fired=1)
    total.add(score_against_point([], 0, 0, rounds_fired=1))
    summ = total.summary()
    assert summ["rounds_located"] == 1 and summ["located_share"] == 0.5
    assert summ["median_m"] == pytest.approx(1.0) and total.spurious == 1


def test_score_against_simulated_events_matches_by_time() -> None:
    events = [TruthEvent(10.0, 0.0, 0.0), TruthEvent(11.0, 100.0, 0.0)]
    shots = [_shot(98.0, 0.0, 11.02), _shot(1.0, 0.0, 10.01), _shot(0.0, 0.0, 50.0)]
    s = score_against_events(shots, events)
    assert sorted(s.errors_m) == [1.0, 2.0]
    assert s.spurious == 1 and s.rounds_fired == 2


def test_percentile_interpolates() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([0.0, 10.0], 90) == pytest.approx(9.0)
