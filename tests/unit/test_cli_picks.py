"""``shotwatch picks``: the picker from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shotwatch.cli.main import main
from shotwatch.core.geo import LocalFrame
from shotwatch.io.smj0 import Smj0Metadata, write_smj0_wav

SR = 12000


def test_picks_json_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sub = tmp_path / "incident"
    sub.mkdir()
    lat, lon, h = LocalFrame(41.69, -87.63).to_geo(0.0, 0.0)
    x = 0.002 * np.random.default_rng(0).standard_normal(SR)
    x[6000:6060] += 0.5 * np.exp(-np.arange(60) / 12.0)
    meta = Smj0Metadata("S-1", 1_663_478_454.0, 1.0, lat, lon, h, clock_error_s=2e-5)
    write_smj0_wav(sub / "a.wav", x, SR, meta)
    (sub / "b.wav").write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    assert main(["picks", str(tmp_path), "--recursive", "--json"]) == 0
    out, err = capsys.readouterr()
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert rec["folder"] == "incident"
    assert rec["sensor"] == "S-1"
    assert abs(rec["t_s"] - (1_663_478_454.0 + 0.5)) < 2e-4
    assert rec["clock_error_s"] == 2e-5
    assert "b.wav" in err and "1 input problems" in err


def test_picks_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["picks", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err
