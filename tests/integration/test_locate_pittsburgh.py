"""Real data: association + location on a few Pittsburgh firing positions, with accuracy
floors, and the `shotwatch locate` command on one test folder and on the Chicago incident."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from shotwatch.association import associate_all
from shotwatch.cli.main import main
from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.settings import Settings
from shotwatch.io.pittsburgh import read_tree

pytestmark = pytest.mark.realdata


def _survey(test_dir: Path) -> tuple[np.ndarray, int]:
    s = json.loads(next(test_dir.glob("*.survey.json")).read_text())
    loc = s["survey_location"]
    return np.array([loc["x"], loc["y"]]), int(s["num_rounds"])


@pytest.mark.parametrize("fp", ["FP1", "FP2"])
def test_own_association_accuracy_floor(pittsburgh_dir: Path, fp: str) -> None:
    settings = Settings()
    errors: list[float] = []
    fired = spurious = 0
    for test in list(read_tree(pittsburgh_dir / fp))[:9]:
        assert test.errors == () or all(e.field for e in test.errors)
        c = speed_of_sound_mps(test.weather.temperature_c if test.weather else 15.0)
        shots, _ = associate_all(
            test.pulses, settings=settings, c_mps=c, sensors=test.sensors.values()
        )
        truth, rounds = _survey(test.path)
        e = sorted(math.hypot(s.x_m - truth[0], s.y_m - truth[1]) for s in shots)
        good = [v for v in e if v <= 25.0]
        errors += good[:rounds]
        fired += rounds
        spurious += len(e) - len(good) + max(0, len(good) - rounds)
    assert len(errors) >= 0.95 * fired
    assert float(np.median(errors)) <= 6.0
    assert float(np.percentile(errors, 90)) <= 8.0
    assert spurious <= 0.15 * fired


def test_cli_json_on_one_test(pittsburgh_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    test_dir = pittsburgh_dir / "FP1" / "test_001"
    assert main(["locate", str(test_dir), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    truth, rounds = _survey(test_dir)
    assert len(rows) == rounds
    keys = {"test", "time_utc", "x_m", "y_m", "z_m", "sensors", "n_sensors", "residual_rms_s"}
    for r in rows:
        assert keys | {"uncertainty_m", "incident_id"} <= set(r)
        assert r["test"] == "test_001" and r["n_sensors"] == len(r["sensors"]) >= 4
        assert math.hypot(r["x_m"] - truth[0], r["y_m"] - truth[1]) < 15
    assert len({r["incident_id"] for r in rows}) == 1  # three rounds, one incident


def test_cli_from_audio_chicago_gives_lat_lon(
    chicago_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = chicago_dir / "district5-incident-556267"
    assert main(["locate", str(folder), "--from-audio", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows, "no shot located from the Chicago district 5 audio"
    r = rows[0]
    # Chicago's 5th district lies around 41.69 N, 87.63 W.
    assert 41.6 < r["lat_deg"] < 41.8 and -87.75 < r["lon_deg"] < -87.5


def test_cli_locates_a_folder_without_published_pulses_from_its_audio(
    chicago_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the plain `shotwatch locate DIR` on the Chicago incident folder (no allpulses.json)
    folder = chicago_dir / "district5-incident-556267"
    assert main(["locate", str(folder), "--json"]) == 0
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert rows and 41.6 < rows[0]["lat_deg"] < 41.8 and -87.75 < rows[0]["lon_deg"] < -87.5
    assert "locating from the sensor audio" in out.err
