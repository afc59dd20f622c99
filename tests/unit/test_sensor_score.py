"""The sensor's windowed classifier score gives exactly the whole-snippet score."""

from __future__ import annotations

import numpy as np
import pytest

from shotwatch.classification.dsp import ANALYSIS_RATE_HZ, resample
from shotwatch.classification.model import default_model
from shotwatch.classification.pulse import features_at, patches_at
from shotwatch.sensor.score import classifier_score


def _reference_score(snippet: np.ndarray, sr: int, onset_index: int) -> float:
    """The straightforward path: resample the whole snippet, batch model evaluation."""
    x = np.asarray(snippet, dtype=np.float64) / 32768.0
    if sr != ANALYSIS_RATE_HZ:
        x = resample(x, float(sr), ANALYSIS_RATE_HZ)
    onset = round(onset_index / sr * ANALYSIS_RATE_HZ)
    m = default_model()
    return float(m.probability(features_at(x, [onset]), patches_at(x, [onset]))[0])


def _street(seconds: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    x = rng.normal(0, 0.004, n)
    k = np.arange(round(0.05 * sr))
    shape = np.exp(-k / (0.004 * sr)) * np.cos(2 * np.pi * 800 * k / sr)
    for t in np.arange(0.7, seconds - 0.1, 0.9):
        i = round(t * sr)
        m = min(k.size, n - i)
        x[i : i + m] += rng.uniform(0.05, 0.9) * shape[:m]
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


@pytest.mark.parametrize("sr", [12000, 16000, 44100, 48000])
def test_windowed_resampling_gives_the_same_score(sr: int) -> None:
    audio = _street(12.0, sr, seed=sr)
    rng = np.random.default_rng(sr)
    onsets = [0, 5, sr, 2 * sr - 3, *rng.integers(0, 2 * sr, size=12).tolist()]
    scores = []
    for k, onset in enumerate(onsets):
        c = sr + k * sr // 2
        snippet = audio[c - sr : c + sr]
        got = classifier_score(snippet, sr, int(onset))
        assert got == _reference_score(snippet, sr, int(onset)), (sr, onset)
        scores.append(got)
    assert len(set(scores)) > 3
