"""Audio reading: formats, rates, channels, and every kind of bad file named clearly."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shotwatch.core.errors import InputError
from shotwatch.io.audio import iter_audio_blocks, read_audio


def _tone(n: int, ch: int) -> np.ndarray:
    t = np.arange(n)
    x = np.stack([0.3 * np.sin(t / (7.0 + c)) for c in range(ch)], axis=1)
    return x[:, 0] if ch == 1 else x


@pytest.mark.parametrize(
    "fmt", [(".wav", "PCM_16", 1e-4), (".flac", "PCM_24", 1e-6), (".ogg", "VORBIS", 0.05)]
)
@pytest.mark.parametrize("rate", [8000, 12000, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2])
def test_reads_formats_rates_channels(
    tmp_path: Path, fmt: tuple[str, str, float], rate: int, channels: int
) -> None:
    suffix, subtype, tol = fmt
    x = _tone(rate // 4, channels)
    p = tmp_path / f"a{suffix}"
    sf.write(p, x, rate, subtype=subtype)
    a = read_audio(p)
    assert a.sample_rate_hz == rate
    assert a.channels == channels
    assert a.n_samples == x.shape[0]
    assert a.samples.dtype == np.float32
    mono = a.mono()
    assert mono.shape == (x.shape[0],)
    expect = x if channels == 1 else x.mean(axis=1)
    assert float(np.sqrt(np.mean((mono - expect) ** 2))) < tol


def test_blocks_equal_whole(tmp_path: Path) -> None:
    x = _tone(10_000, 2)
    p = tmp_path / "b.wav"
    sf.write(p, x, 12000, subtype="FLOAT")
    whole = read_audio(p).mono()
    blocks = np.concatenate(list(iter_audio_blocks(p, block_size=777)))
    np.testing.assert_array_equal(blocks, whole)


def _wav_bytes(rate: int, data: bytes, declared: int | None = None) -> bytes:
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16)
    size = len(data) if declared is None else declared
    body = b"WAVE" + fmt + struct.pack("<4sI", b"data", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as ei:
        read_audio(tmp_path / "nope.wav")
    assert ei.value.field == "file"
    assert "nope.wav" in ei.value.where


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.flac"
    p.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_audio(p)


def test_wav_without_samples(tmp_path: Path) -> None:
    p = tmp_path / "nodata.wav"
    p.write_bytes(_wav_bytes(12000, b""))
    with pytest.raises(InputError, match="no samples") as ei:
        read_audio(p)
    assert ei.value.field == "chunk 'data'"


def test_truncated_data_chunk(tmp_path: Path) -> None:
    p = tmp_path / "cut.wav"
    p.write_bytes(_wav_bytes(12000, b"\x01\x00" * 500, declared=24000))
    with pytest.raises(InputError, match="truncated") as ei:
        read_audio(p)
    assert ei.value.where == str(p)
    assert ei.value.field == "chunk 'data'"


def test_half_frame_data(tmp_path: Path) -> None:
    p = tmp_path / "odd.wav"
    p.write_bytes(_wav_bytes(12000, b"\x01\x00\x02"))
    with pytest.raises(InputError, match="whole number"):
        read_audio(p)


@pytest.mark.parametrize("rate", [1000, 3999, 500_000])
def test_odd_sample_rate(tmp_path: Path, rate: int) -> None:
    p = tmp_path / "rate.wav"
    p.write_bytes(_wav_bytes(rate, b"\x01\x00" * 100))
    with pytest.raises(InputError) as ei:
        read_audio(p)
    assert ei.value.field == "sample_rate"
    assert str(rate) in ei.value.reason


def test_garbage_flac(tmp_path: Path) -> None:
    p = tmp_path / "junk.flac"
    p.write_bytes(b"this is not audio" * 10)
    with pytest.raises(InputError) as ei:
        read_audio(p)
    assert ei.value.field == "file"
    assert ei.value.where == str(p)


def test_missing_fmt_chunk(tmp_path: Path) -> None:
    body = b"WAVE" + struct.pack("<4sI", b"data", 4) + b"\0\0\0\0"
    p = tmp_path / "nofmt.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(InputError, match="missing") as ei:
        read_audio(p)
    assert ei.value.field == "chunk 'fmt '"
