"""The sensor's fast classifier score gives exactly what the classification package gives."""

from __future__ import annotations

import numpy as np
import pytest

from shotwatch.classification.dsp import ANALYSIS_RATE_HZ, resample
from shotwatch.classification.model import default_model
from shotwatch.classification.pulse import features_at
from shotwatch.sensor.score import _forest_for, classifier_score


def _reference_score(snippet: np.ndarray, sr: int, onset_index: int) -> float:
    """The straightforward path: resample the whole snippet, batch model evaluation."""
    x = np.asarray(snippet, dtype=np.float64) / 32768.0
    if sr != ANALYSIS_RATE_HZ:
        x = resample(x, float(sr), ANALYSIS_RATE_HZ)
    onset = round(onset_index / sr * ANALYSIS_RATE_HZ)
    return float(default_model().probability(features_at(x, [onset]))[0])


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


def test_forest_matches_model_bit_for_bit() -> None:
    model = default_model()
    forest = _forest_for(model)
    rng = np.random.default_rng(7)
    # Rows near the split thresholds exercise both branches of many nodes; NaN goes right.
    thr = model.threshold_node[model.left >= 0]
    feats = model.feature[model.left >= 0]
    rows = rng.normal(0, 3, size=(400, len(model.feature_names)))
    for r in rows[:300]:
        pick = rng.integers(0, thr.size, size=8)
        r[feats[pick]] = thr[pick] + rng.choice([-1e-9, 0.0, 1e-9], size=8)
    rows[-5:, 3] = np.nan
    want = model.probability(rows)
    got = np.array([forest.probability(r) for r in rows])
    assert np.array_equal(got, want)
    assert 0.0 < got.min() < got.max() < 1.0  # the rows reach different leaves


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
