"""``shotwatch classify``: formats, rates, channels, JSON shape and per-file errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shotwatch.classification import synth
from shotwatch.classification.dsp import resample
from shotwatch.cli.main import main


def _clip(
    rate: int, family: str = "gunshot_close", seed: int = 0, seconds: float = 2.0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    src = synth.render(family, rng)
    src = resample(src, synth.SYNTH_RATE_HZ, rate)
    x = rng.standard_normal(int(seconds * rate)) * 2e-3
    a = int(0.6 * rate)
    m = min(len(src), len(x) - a)
    x[a : a + m] += 0.4 * src[:m]
    return x


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]]]:
    rc = main(["classify", "--json", *args])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return rc, lines


def test_formats_rates_and_channels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "mono12k.wav"
    sf.write(wav, _clip(12_000), 12_000, subtype="PCM_16")
    flac = tmp_path / "stereo44k.flac"
    x = _clip(44_100, seed=1)
    sf.write(flac, np.stack([x, 0.8 * x], axis=1), 44_100)
    ogg = tmp_path / "mono8k.ogg"
    sf.write(ogg, _clip(8_000, seed=2), 8_000, format="OGG", subtype="VORBIS")
    rc, out = _run(capsys, str(wav), str(flac), str(ogg))
    assert rc == 0
    assert [o["file"] for o in out] == [str(wav), str(flac), str(ogg)]
    for o in out:
        assert set(o) >= {"file", "gunshot", "score", "label", "events", "model_version"}
        assert isinstance(o["gunshot"], bool)
        assert 0.0 <= float(o["score"]) <= 1.0  # type: ignore[arg-type]
        events = o["events"]
        assert isinstance(events, list) and events, "the embedded impulse was not found"
        for ev in events:
            assert set(ev) == {"t_s", "score", "label"}
        # A file is a gunshot exactly when one of its events is.
        assert o["gunshot"] == any(ev["label"] == "gunshot" for ev in events)
        assert any(abs(ev["t_s"] - 0.6) < 0.01 for ev in events)
    assert out[1]["channels"] == 2 and out[1]["sample_rate_hz"] == 44_100


def test_speech_is_not_gunfire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "speech.wav"
    sf.write(p, _clip(16_000, "speech", seed=3), 16_000)
    rc, out = _run(capsys, str(p))
    assert rc == 0 and out[0]["gunshot"] is False


def test_bad_files_get_errors_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, _clip(12_000), 12_000)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 10)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(24_000), 12_000)
    clipped = tmp_path / "clipped.wav"
    t = np.arange(24_000) / 12_000
    sf.write(clipped, np.clip(3 * np.sin(2 * np.pi * 300 * t), -1, 1), 12_000)
    short = tmp_path / "short.wav"
    sf.write(short, np.random.default_rng(0).standard_normal(300) * 0.1, 12_000)
    missing = tmp_path / "missing.ogg"
    files = [garbage, good, empty, silent, clipped, short, missing]
    rc, out = _run(capsys, *map(str, files))
    assert rc == 1
    assert [o["file"] for o in out] == list(map(str, files))
    by_name = {Path(str(o["file"])).name: o for o in out}
    assert "error" not in by_name["good.wav"]
    expected = {
        "garbage.wav": "",
        "empty.flac": "empty",
        "silent.wav": "silent",
        "clipped.wav": "clipped",
        "short.wav": "too short",
        "missing.ogg": "does not exist",
    }
    for name, words in expected.items():
        err = by_name[name]["error"]
        assert isinstance(err, dict), name
        assert err["where"] == str(tmp_path / name)
        assert words in err["reason"], (name, err)


def test_text_output_and_exit_code_without_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "a.wav"
    sf.write(p, _clip(12_000), 12_000)
    assert main(["classify", str(p)]) == 0
    assert str(p) in capsys.readouterr().out


@pytest.mark.realdata
def test_chicago_incident_recordings_are_gunfire(
    chicago_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted((chicago_dir / "district5-incident-556267").glob("*.wav"))
    rc, out = _run(capsys, *map(str, files))
    assert rc == 0 and len(out) == len(files) == 4
    assert sum(bool(o["gunshot"]) for o in out) >= 3


def test_a_clipped_close_range_recording_is_judged_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recorder near a shooter clips; a few per cent of flat samples is no reason to
    refuse the file (ADR 0045), only a waveform mostly stuck at full scale is."""
    from shotwatch.cli.classify import clipped_fraction

    x = _clip(44_100, seed=3, seconds=1.0)
    x = np.clip(x * 60.0 / np.max(np.abs(x)), -1.0, 1.0)
    assert 0.01 < clipped_fraction(x) < 0.25
    path = tmp_path / "close.wav"
    sf.write(path, x, 44_100)
    rc, (out,) = _run(capsys, str(path))
    assert rc == 0 and "error" not in out
    assert any("clipped" in w for w in out["warnings"])  # type: ignore[attr-defined]
