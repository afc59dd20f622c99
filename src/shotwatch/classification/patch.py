"""A small time-frequency picture of one impulse, for the convolutional half of the model.

The picture is the log power of short frames (10.7 ms Hann windows every 4 ms) in
``PATCH_BANDS`` bands spaced evenly on the mel scale between 60 Hz and 5.8 kHz, from
``PATCH_PRE_S`` before the onset to ``PATCH_FRAMES`` frames later (~0.4 s), in dB over the
*noise of the same band before the onset*. Dividing by each band's own noise whitens a
sensor's coloured background (wind rumble, traffic hum), so the picture shows where and how the
impulse rises above the noise rather than the loudness of either; values are clipped to
[-10, 50] dB and scaled to about [-0.5, 2.5].

Pure function of a snippet made by :func:`shotwatch.classification.features.extract_snippet`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from shotwatch.classification.dsp import ANALYSIS_RATE_HZ, highpass
from shotwatch.classification.features import PRE_S

PATCH_BANDS = 32
PATCH_FRAMES = 96
FRAME_N = 128
HOP_N = 48
#: The picture starts this long before the onset (two hops of noise ahead of the impulse).
PATCH_PRE_S = 0.024
LO_HZ, HI_HZ = 60.0, 5800.0
CLIP_DB = (-10.0, 50.0)
SCALE_DB = 20.0


@lru_cache(maxsize=4)
def _band_matrix(rate_hz: int) -> np.ndarray:
    """(bands, bins) triangular weights on the mel scale, rows summing to 1."""
    freqs = np.fft.rfftfreq(FRAME_N, 1.0 / rate_hz)
    mel_lo, mel_hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (LO_HZ, HI_HZ))
    edges = 700.0 * (10.0 ** (np.linspace(mel_lo, mel_hi, PATCH_BANDS + 2) / 2595.0) - 1.0)
    w = np.zeros((PATCH_BANDS, len(freqs)))
    for b in range(PATCH_BANDS):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        w[b] = np.clip(np.minimum(up, down), 0.0, None)
        if w[b].sum() == 0.0:  # narrower than one bin: take the nearest bin
            w[b, int(np.argmin(np.abs(freqs - mid)))] = 1.0
    return w / w.sum(axis=1, keepdims=True)


def _frames(x: np.ndarray, start: int, count: int) -> np.ndarray:
    """``count`` frames of FRAME_N samples every HOP_N from ``start`` (zero beyond the ends)."""
    need = start + (count - 1) * HOP_N + FRAME_N
    buf = np.zeros(max(need, len(x)) - min(start, 0))
    off = -min(start, 0)
    buf[off : off + len(x)] = x
    s0 = start + off
    idx = s0 + np.arange(count)[:, None] * HOP_N + np.arange(FRAME_N)[None, :]
    return buf[idx]


def log_patch(snippet: np.ndarray, rate_hz: int = ANALYSIS_RATE_HZ) -> np.ndarray:
    """(PATCH_BANDS, PATCH_FRAMES) picture, float32, low band first."""
    x = highpass(np.asarray(snippet, dtype=np.float64), rate_hz, 20.0)
    pre = round(PRE_S * rate_hz)
    win = np.hanning(FRAME_N)
    bands = _band_matrix(rate_hz)
    start = pre - round(PATCH_PRE_S * rate_hz)
    sig = _frames(x, start, PATCH_FRAMES) * win
    p = bands @ (np.abs(np.fft.rfft(sig, axis=1)) ** 2).T  # (bands, frames)
    # Noise per band from the frames that end before the onset (2 ms margin).
    n_noise = (pre - round(0.002 * rate_hz) - FRAME_N) // HOP_N + 1
    noise_fr = x[: pre - round(0.002 * rate_hz)]
    noise = np.zeros(PATCH_BANDS)
    if n_noise >= 3 and np.count_nonzero(noise_fr) > len(noise_fr) // 2:
        nz = _frames(noise_fr, 0, n_noise) * win
        noise = np.median(bands @ (np.abs(np.fft.rfft(nz, axis=1)) ** 2).T, axis=1)
    if not np.all(noise > 0.0):
        # No usable noise before the onset (file start, digital silence): the quietest
        # tenth of the picture's own frames stands in.
        noise = np.where(noise > 0.0, noise, np.percentile(p, 10, axis=1))
    floor = max(float(np.max(p)) * 1e-12, 1e-30)
    rel = 10.0 * np.log10(np.maximum(p, floor) / np.maximum(noise, floor)[:, None])
    return (np.clip(rel, *CLIP_DB) / SCALE_DB).astype(np.float32)
