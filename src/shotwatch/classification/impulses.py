"""Candidate impulses in a block of audio, for classifying whole files.

The live pipeline gets its pulses from the streaming picker (:mod:`shotwatch.signal`); a file
handed to ``shotwatch classify`` has no picks, so this finds the impulsive onsets worth
classifying with a short-term / long-term energy ratio (STA/LTA, as ObsPy's triggers).

Recordings can carry runs of exact digital zeros (padding before and after the audio, dropouts);
those frames are excluded from the noise estimate, so the step from silence to sound is not
taken for an impulse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shotwatch.classification.dsp import db, frame_energy, highpass

FRAME_S = 0.002
LTA_S = 0.5
GAP_S = 0.01
MIN_HISTORY_S = 0.1


@dataclass(frozen=True, slots=True)
class Impulse:
    """One candidate onset: sample index, time from the start of the block, and its level
    above the preceding noise (peak 2-ms energy over the long-term mean, dB)."""

    index: int
    t_s: float
    snr_db: float


def find_impulses(
    x: np.ndarray,
    rate_hz: float,
    *,
    threshold_db: float = 9.0,
    dead_time_s: float = 0.03,
    highpass_hz: float = 100.0,
) -> list[Impulse]:
    """Onsets whose 2-ms energy rises ``threshold_db`` above the mean of the previous 0.5 s."""
    x = np.asarray(x, dtype=np.float64)
    frame = max(1, round(FRAME_S * rate_hz))
    y = highpass(x, rate_hz, highpass_hz)
    energy = frame_energy(y, frame)
    n = len(energy)
    if n < 3:
        return []
    nonzero = frame_energy(x, frame) > 0.0
    # Long-term average over valid frames only, ending GAP_S before the current frame.
    lta_n = round(LTA_S / FRAME_S)
    gap_n = round(GAP_S / FRAME_S)
    e_valid = np.where(nonzero, energy, 0.0)
    c_e = np.concatenate([[0.0], np.cumsum(e_valid)])
    c_v = np.concatenate([[0.0], np.cumsum(nonzero.astype(np.float64))])
    idx = np.arange(n)
    hi = np.maximum(idx - gap_n, 0)
    lo = np.maximum(hi - lta_n, 0)
    count = c_v[hi] - c_v[lo]
    total = c_e[hi] - c_e[lo]
    valid_e = energy[nonzero]
    global_noise = float(np.percentile(valid_e, 20)) if valid_e.size else 0.0
    min_hist = round(MIN_HISTORY_S / FRAME_S)
    lta = np.where(count >= min_hist, total / np.maximum(count, 1.0), global_noise)
    floor = max(global_noise * 1e-3, 1e-14)
    ratio_db = db(energy, floor) - db(lta, floor)
    ratio_db[~nonzero] = -np.inf
    # No trigger within 50 ms after digital silence: that step is the audio starting.
    after_zero = np.convolve(~nonzero, np.ones(round(0.05 / FRAME_S)), mode="full")[:n]
    ratio_db[after_zero > 0] = -np.inf

    out: list[Impulse] = []
    dead_n = max(1, round(dead_time_s / FRAME_S))
    above = ratio_db >= threshold_db
    k = 0
    while k < n:
        if not above[k]:
            k += 1
            continue
        end = min(n, k + round(0.03 / FRAME_S))
        peak_k = k + int(np.argmax(energy[k:end]))
        snr = float(db(energy[peak_k], floor) - db(lta[k], floor))
        # Onset: first sample near the trigger reaching a quarter of the early peak amplitude.
        a = max(0, (k - 1) * frame)
        b = min(len(y), (peak_k + 1) * frame)
        seg = np.abs(y[a:b])
        onset = a + int(np.argmax(seg >= 0.25 * float(seg.max()))) if seg.size else a
        out.append(Impulse(onset, onset / rate_hz, snr))
        # Re-arm after the dead time once the ratio has dropped below the threshold.
        k += dead_n
        while k < n and above[k]:
            k += 1
    return out
