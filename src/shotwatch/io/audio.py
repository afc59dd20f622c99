"""Reading sensor audio: WAV, FLAC and OGG at any sensible sample rate, mono or multichannel.

Decoding is libsndfile's (through ``soundfile``). WAV files are additionally walked chunk by
chunk (:mod:`shotwatch.io.smj0`) so that a truncated ``data`` chunk, which libsndfile would
silently shorten, is reported instead of being read as a shorter recording. Every problem
raises :class:`InputError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from shotwatch.core.errors import InputError
from shotwatch.io.smj0 import find_chunk, parse_fmt, walk_riff

#: Sample rates outside this range are refused as implausible for an acoustic sensor.
MIN_SAMPLE_RATE_HZ = 4_000
MAX_SAMPLE_RATE_HZ = 384_000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` float32 in [-1, 1], shape (n,) when mono or (n, channels)."""

    path: str
    samples: np.ndarray
    sample_rate_hz: int
    channels: int
    format: str

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    def mono(self) -> np.ndarray:
        """Channel mean as a float32 1-D array (the single channel when mono)."""
        if self.samples.ndim == 1:
            return self.samples
        return np.asarray(self.samples.mean(axis=1), dtype=np.float32)


def _check_rate(where: str, rate: int) -> None:
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise InputError(
            where,
            "sample_rate",
            f"{rate} Hz is outside the supported {MIN_SAMPLE_RATE_HZ}-{MAX_SAMPLE_RATE_HZ} Hz",
        )


def _check_wav_structure(path: Path, where: str) -> None:
    """Walk the RIFF chunks: a missing or truncated fmt/data chunk is an error."""
    data = path.read_bytes()
    chunks = walk_riff(data, where)
    fmt = parse_fmt(data, find_chunk(chunks, "fmt ", where), where)
    _check_rate(where, fmt.sample_rate_hz)
    body = find_chunk(chunks, "data", where)
    if body.size == 0:
        raise InputError(where, "chunk 'data'", "holds no samples (empty recording)")
    if fmt.block_align and body.size % fmt.block_align:
        raise InputError(
            where,
            "chunk 'data'",
            f"size {body.size} is not a whole number of {fmt.block_align}-byte frames",
        )


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """libsndfile's header information (rate, channels, frames) without decoding."""
    p = Path(path)
    try:
        return sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise InputError(str(p), "file", f"not readable as audio: {exc}") from exc


def read_audio(path: str | Path) -> Audio:
    """Decode an audio file; InputError for unreadable, empty, truncated or odd-rate files."""
    p = Path(path)
    where = str(p)
    if not p.is_file():
        raise InputError(where, "file", "does not exist or is not a file")
    if p.stat().st_size == 0:
        raise InputError(where, "file", "is empty (0 bytes)")
    if p.suffix.lower() == ".wav":
        try:
            _check_wav_structure(p, where)
        except OSError as exc:
            raise InputError(where, "file", f"cannot read: {exc}") from exc
    try:
        with sf.SoundFile(str(p)) as f:
            rate = int(f.samplerate)
            channels = int(f.channels)
            fmt = str(f.format)
            _check_rate(where, rate)
            samples = f.read(dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise InputError(where, "file", f"not readable as audio: {exc}") from exc
    if samples.shape[0] == 0:
        raise InputError(where, "samples", "the file holds no audio samples")
    if not np.all(np.isfinite(samples)):
        raise InputError(where, "samples", "contains NaN or infinite values")
    return Audio(where, samples, rate, channels, fmt)


def iter_audio_blocks(path: str | Path, block_size: int = 65536) -> Iterator[np.ndarray]:
    """Stream a file as mono float32 blocks (for long recordings and the sensor's replay)."""
    p = Path(path)
    where = str(p)
    if p.suffix.lower() == ".wav":
        _check_wav_structure(p, where)
    try:
        with sf.SoundFile(str(p)) as f:
            _check_rate(where, int(f.samplerate))
            for block in f.blocks(blocksize=block_size, dtype="float32", always_2d=True):
                yield np.asarray(block.mean(axis=1), dtype=np.float32)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InputError(where, "file", f"not readable as audio: {exc}") from exc
