from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shotwatch.core.settings import Settings
from shotwatch.sensor.agent import picker_config_factory
from shotwatch.sensor.buffer import AudioBuffer
from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore, VerifiedReport
from shotwatch.sensor.keys import KeyEncryptionKey
from shotwatch.sensor.pipeline import SensorPipeline
from shotwatch.sensor.score import impulsiveness_score
from shotwatch.sensor.signer import SensorSigner
from shotwatch.sensor.sources import AudioBlock

T0 = 1_800_000_000.0
SR = 12000
SHOTS_S = [3.2, 7.05, 11.5, 19.9]


def _audio(seconds: float = 22.0, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.003, round(seconds * SR))
    for t in SHOTS_S:
        i = round(t * SR)
        if i + 600 > x.size:
            continue
        n = np.arange(600)
        x[i : i + 600] += 0.6 * np.exp(-n / 60.0) * np.cos(2 * np.pi * 900 * n / SR)
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def _run(  # type: ignore[no-untyped-def]
    tmp_path: Path, block: int, audio: np.ndarray, tag: str, picker_chunk_s: float = 0.25
):
    key = Ed25519PrivateKey.generate()
    out: list[tuple[int, str, bytes]] = []
    buf = AudioBuffer.open(
        tmp_path / f"buf{tag}",
        KeyEncryptionKey(b"q" * 32),
        sample_rate_hz=SR,
        retention_s=3600.0,
        segment_s=5.0,
    )
    pipe = SensorPipeline(
        signer=SensorSigner("SN-P", key, tmp_path / f"seq{tag}"),
        emit=lambda q, k, d: out.append((q, k, d)),
        buffer=buf,
        picker_config=picker_config_factory(Settings()),
        position={"x_m": 1.0, "y_m": 2.0, "z_m": 3.0},
        heartbeat_interval_s=5.0,
        picker_chunk_s=picker_chunk_s,
    )
    for i in range(0, audio.size, block):
        pipe.process(AudioBlock(audio[i : i + block], T0 + i / SR, SR, 0.0004))
    pipe.close(T0 + audio.size / SR)
    ingest = Ingest(MemoryIngestStore({"SN-P": key.public_key()}), IngestLimits())
    verified = [ingest.verify_report(d, received_s=T0 + 100) for _, _, d in out]
    assert all(isinstance(v, VerifiedReport) for v in verified), verified
    return pipe, buf, [v for v in verified if isinstance(v, VerifiedReport)]


def test_reports_time_snippet_and_buffer(tmp_path: Path) -> None:
    audio = _audio()
    _, buf, msgs = _run(tmp_path, 1200, audio, "a")
    reports = [m for m in msgs if m.kind == "report"]
    times = sorted(m.pulse().t_s - T0 for m in reports)
    assert len(times) == len(SHOTS_S)
    assert np.allclose(times, SHOTS_S, atol=0.001)
    for m in reports:
        got = m.audio()
        assert got is not None
        samples, sr = got
        i0 = round((m.pulse().t_s - 1.0 - T0) * SR)
        assert sr == SR and samples.size == 2 * SR
        assert np.array_equal(samples, audio[i0 : i0 + 2 * SR])  # exactly 1 s before, 1 s after
        assert 0.5 < m.body["score"] <= 1.0
    beats = [m for m in msgs if m.kind == "heartbeat"]
    assert len(beats) >= 4 and beats[-1].body["buffer_span_s"] == pytest.approx(22.0)
    pieces = buf.read(T0, T0 + 22.0)
    assert len(pieces) == 1 and np.array_equal(pieces[0].samples, audio)
    buf.close()


def test_block_size_does_not_change_the_reports(tmp_path: Path) -> None:
    audio = _audio(12.0)
    runs = []
    # Block size and how much audio the pipeline gathers before picking (none, 0.25 s, 1 s).
    for tag, block, chunk_s in (("x", 1200, 0.25), ("y", 977, 0.0), ("z", 5000, 1.0)):
        _, buf, msgs = _run(tmp_path, block, audio, tag, picker_chunk_s=chunk_s)
        buf.close()
        runs.append(
            [
                (m.body["arrival_utc"], m.body["snr_db"], m.body["score"], m.body["snippet"])
                for m in msgs
                if m.kind == "report"
            ]
        )
    assert runs[0] == runs[1] == runs[2] and len(runs[0]) == 3


def test_pick_near_stream_start_is_zero_padded_not_shortened(tmp_path: Path) -> None:
    audio = _audio(5.0)
    shifted = audio[round(2.6 * SR) :]  # first shot 0.6 s after the stream starts
    pipe, buf, msgs = _run(tmp_path, 1200, shifted, "p")
    buf.close()
    reports = [m for m in msgs if m.kind == "report"]
    assert reports and pipe.stats.padded_snippets >= 1
    audio0 = reports[0].audio()
    assert audio0 is not None and audio0[0].size == 2 * SR


def test_impulsiveness_score_ranks_impulse_above_hum() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 300, 2 * SR)
    impulse = noise.copy()
    n = np.arange(600)
    impulse[SR : SR + 600] += 20000 * np.exp(-n / 60.0)
    hum = noise.copy()
    hum[SR:] += (
        3000 * np.sin(2 * np.pi * 120 * np.arange(SR) / SR) * np.minimum(1, np.arange(SR) / 2000)
    )
    assert impulsiveness_score(impulse, SR, SR) > 0.8
    assert impulsiveness_score(hum, SR, SR) < 0.4


def test_live_source_without_sounddevice_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from shotwatch.core.clock import SystemClock
    from shotwatch.core.errors import InputError
    from shotwatch.sensor.sources import LiveSource

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # makes any import of it fail
    src = LiveSource(SystemClock(), sample_rate_hz=12000)  # constructing needs no PortAudio
    with pytest.raises(InputError, match=r"audio-input"):
        next(iter(src.blocks()))
