"""The all-trees-at-once walk of the pulse model equals a plain one-tree-at-a-time walk
(the reference twin), bit for bit, on the shipped model (issue #5: scoring cost)."""

from __future__ import annotations

import numpy as np

from shotwatch.classification.model import default_model
from shotwatch.classification.pulse import classify_pulses


def reference_raw_score(features: np.ndarray) -> np.ndarray:
    m = default_model()
    x = np.atleast_2d(np.asarray(features, dtype=np.float64))
    out = np.zeros(x.shape[0])
    for r in range(x.shape[0]):
        total = 0.0
        for root in m.roots:
            node = int(root)
            while m.left[node] >= 0:
                go_left = x[r, m.feature[node]] <= m.threshold_node[node]
                node = int(m.left[node] if go_left else m.right[node])
            total += float(m.value[node])
        out[r] = m.init_score + m.learning_rate * total
    return out


def test_vectorised_walk_equals_reference_bit_for_bit() -> None:
    m = default_model()
    rng = np.random.default_rng(5)
    # rows spread around the training distribution, plus values exactly on split thresholds
    x = m.feat_mean + m.feat_scale * rng.normal(0.0, 1.5, size=(64, len(m.feature_names)))
    inner = np.flatnonzero(m.left >= 0)[:8]
    for k, node in enumerate(inner):
        x[k, m.feature[node]] = m.threshold_node[node]
    got = m.raw_score(x)
    want = reference_raw_score(x)
    assert np.array_equal(got, want)
    assert np.ptp(got) > 1.0  # the rows really reach different leaves
    np.testing.assert_array_equal(m.probability(x), m.calibrate(want))


def test_empty_and_single_row() -> None:
    m = default_model()
    assert m.raw_score(np.zeros((0, len(m.feature_names)))).shape == (0,)
    one = m.feat_mean[None, :]
    assert np.array_equal(m.raw_score(one), reference_raw_score(one))


def test_decision_on_an_impulse_uses_the_same_scores() -> None:
    sr = 12000
    t = np.arange(2 * sr) / sr
    x = 3000 * np.exp(-((t - 1.0) ** 2) / 1e-4) * np.sin(2e3 * t)
    (d,) = classify_pulses(x, sr, [1.0])
    m = default_model()
    feats = np.array([[d.features[k] for k in m.feature_names]])
    assert d.raw_score == float(reference_raw_score(feats)[0])
