"""Small pure DSP helpers shared by the impulse finder, the features and the synthesizer."""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from shotwatch.core.errors import InputError

#: Every snippet is analysed at this rate: the network's sensors record at 12 kHz, and
#: features must mean the same thing whatever rate a file came in at.
ANALYSIS_RATE_HZ = 12_000


def resample(x: np.ndarray, from_hz: float, to_hz: float = ANALYSIS_RATE_HZ) -> np.ndarray:
    """Polyphase resampling (anti-aliased) from ``from_hz`` to ``to_hz``.

    Arbitrary rates are approximated by the nearest small rational ratio (error < 0.01 %).
    """
    if not np.isfinite(from_hz) or from_hz <= 0:
        raise InputError("audio", "sample_rate_hz", f"must be positive, got {from_hz}")
    x = np.asarray(x, dtype=np.float64)
    if round(from_hz) == round(to_hz):
        return x
    ratio = Fraction(round(to_hz), round(from_hz)).limit_denominator(1000)
    return np.asarray(sps.resample_poly(x, ratio.numerator, ratio.denominator), dtype=np.float64)


@lru_cache(maxsize=32)
def _sos(
    kind: str, cutoff_hz: float | tuple[float, float], rate_hz: float, order: int
) -> np.ndarray:
    return np.asarray(sps.butter(order, cutoff_hz, btype=kind, fs=rate_hz, output="sos"))


def highpass(x: np.ndarray, rate_hz: float, cutoff_hz: float, order: int = 2) -> np.ndarray:
    """Causal Butterworth high-pass (causal so onsets are not smeared backwards in time),
    started in its steady state for the first sample so a DC offset does not ring as a step."""
    x = np.asarray(x, dtype=np.float64)
    sos = _sos("highpass", float(cutoff_hz), float(rate_hz), order)
    if x.size == 0:
        return x
    zi = sps.sosfilt_zi(sos) * x[0]
    return np.asarray(sps.sosfilt(sos, x, zi=zi)[0])


def lowpass(x: np.ndarray, rate_hz: float, cutoff_hz: float, order: int = 2) -> np.ndarray:
    """Causal Butterworth low-pass; a cutoff at or above Nyquist returns ``x`` unchanged."""
    if cutoff_hz >= 0.49 * rate_hz:
        return np.asarray(x, dtype=np.float64)
    return np.asarray(sps.sosfilt(_sos("lowpass", float(cutoff_hz), float(rate_hz), order), x))


def bandpass(
    x: np.ndarray, rate_hz: float, lo_hz: float, hi_hz: float, order: int = 2
) -> np.ndarray:
    """Causal Butterworth band-pass (``hi_hz`` is clamped below Nyquist)."""
    hi = min(hi_hz, 0.45 * rate_hz)
    return np.asarray(
        sps.sosfilt(_sos("bandpass", (float(lo_hz), float(hi)), float(rate_hz), order), x)
    )


def frame_energy(x: np.ndarray, frame: int) -> np.ndarray:
    """Mean square per non-overlapping frame of ``frame`` samples (the tail is dropped)."""
    n = len(x) // frame
    if n == 0:
        return np.zeros(0)
    return np.asarray(np.mean(np.reshape(x[: n * frame] ** 2, (n, frame)), axis=1))


def db(x: np.ndarray | float, floor: float = 1e-20) -> np.ndarray:
    """10 log10 of a power-like quantity with a floor (no -inf)."""
    return np.asarray(10.0 * np.log10(np.maximum(x, floor)))
