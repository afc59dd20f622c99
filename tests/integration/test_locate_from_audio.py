"""Real data: `shotwatch locate --from-audio` (own picker + few-sensor grouping) on whole
Pittsburgh firing positions, scored against the surveyed shooter position (evaluation only).

FP1 is a typical firing position; FP5 the hardest (four sensors, strong non-line-of-sight
delays). Before the few-sensor grouping (ADR 0022) these located 78 % and 19 %."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from shotwatch.cli.main import main

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("fp", ["FP1", "FP5"])
def test_from_audio_located_share_floor(
    pittsburgh_dir: Path, fp: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = pittsburgh_dir / fp
    assert main(["locate", str(root), "--from-audio", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_test: dict[str, list[dict[str, float]]] = {}
    for r in rows:
        by_test.setdefault(r["test"], []).append(r)
    fired = located = within15 = 0
    for survey_path in sorted(root.glob("test_*/*.survey.json")):
        survey = json.loads(survey_path.read_text())
        sx, sy = survey["survey_location"]["x"], survey["survey_location"]["y"]
        rounds = int(survey["num_rounds"])
        shots = by_test.get(survey_path.parent.name, [])
        errs = sorted(math.hypot(s["x_m"] - sx, s["y_m"] - sy) for s in shots)
        good = [e for e in errs if e <= 25.0][:rounds]
        fired += rounds
        located += len(good)
        within15 += sum(1 for e in good if e <= 15.0)
    assert fired == 36
    assert located >= 0.80 * fired, f"{fp}: located {located}/{fired}"
    assert within15 >= 0.75 * fired, f"{fp}: within 15 m {within15}/{fired}"
