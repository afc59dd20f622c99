"""Pulse-level decisions: is this impulse gunfire, and if not, what is it likely to be?

Pure functions on arrays. Every decision carries the model version, the calibrated score, the
raw model output and the features behind it, so a reviewer (and an auditor) can see why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from shotwatch.classification.dsp import ANALYSIS_RATE_HZ, resample
from shotwatch.classification.features import FEATURE_NAMES, extract_snippet, pulse_features
from shotwatch.classification.impulses import find_impulses
from shotwatch.classification.model import GUNSHOT, PulseModel, default_model
from shotwatch.classification.patch import PATCH_BANDS, PATCH_FRAMES, log_patch

ALGORITHM = "shotwatch.classification.pulse"


@dataclass(frozen=True)
class PulseDecision:
    """The classifier's decision on one impulse."""

    t_s: float
    score: float
    gunshot: bool
    label: str
    model_version: str
    raw_score: float
    snr_db: float
    features: dict[str, float] = field(default_factory=dict)
    label_scores: dict[str, float] = field(default_factory=dict)
    #: Log-odds of each part of the model before stacking (``trees``, ``cnn``).
    component_scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self, *, with_features: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "t_s": round(self.t_s, 4),
            "score": round(self.score, 4),
            "gunshot": self.gunshot,
            "label": self.label,
            "model_version": self.model_version,
            "raw_score": round(self.raw_score, 4),
            "snr_db": round(self.snr_db, 2),
        }
        if self.component_scores:
            out["component_scores"] = {k: round(v, 4) for k, v in self.component_scores.items()}
        if with_features:
            out["features"] = {k: round(v, 4) for k, v in self.features.items()}
            out["label_scores"] = {k: round(v, 4) for k, v in self.label_scores.items()}
        return out


def features_at(x: np.ndarray, onsets: Sequence[int]) -> np.ndarray:
    """Feature matrix (one row per onset) of 12-kHz audio ``x``."""
    if not len(onsets):
        return np.zeros((0, len(FEATURE_NAMES)))
    return np.vstack([pulse_features(extract_snippet(x, int(i))) for i in onsets])


def patches_at(x: np.ndarray, onsets: Sequence[int]) -> np.ndarray:
    """Time-frequency pictures (one per onset, :func:`log_patch`) of 12-kHz audio ``x``."""
    if not len(onsets):
        return np.zeros((0, PATCH_BANDS, PATCH_FRAMES), np.float32)
    return np.stack([log_patch(extract_snippet(x, int(i))) for i in onsets])


def inputs_at(
    x: np.ndarray, onsets: Sequence[int], model: PulseModel | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """What ``model`` scores for each onset of 12-kHz audio ``x``: the feature rows, and the
    pictures when the model has a network (else None)."""
    m = model or default_model()
    return features_at(x, onsets), patches_at(x, onsets) if m.needs_pictures else None


def decide(
    features: np.ndarray,
    times_s: Sequence[float],
    snrs_db: Sequence[float],
    model: PulseModel | None = None,
    pictures: np.ndarray | None = None,
) -> list[PulseDecision]:
    """Decisions for precomputed feature rows (and pictures, for a model with a network)."""
    m = model or default_model()
    if features.shape[0] == 0:
        return []
    raw = m.raw_score(features)
    cnn = m.cnn_score(pictures, len(raw))
    prob = m.calibrate(raw, cnn)
    lab_p = m.label_probabilities(features)
    confusers = m.likely_confuser(features)
    out = []
    for i in range(features.shape[0]):
        is_gun = bool(prob[i] >= m.threshold)
        out.append(
            PulseDecision(
                t_s=float(times_s[i]),
                score=float(prob[i]),
                gunshot=is_gun,
                label=GUNSHOT if is_gun else confusers[i],
                model_version=m.version,
                raw_score=float(raw[i]),
                snr_db=float(snrs_db[i]),
                features=dict(zip(FEATURE_NAMES, map(float, features[i]), strict=True)),
                label_scores=dict(zip(m.label_names, map(float, lab_p[i]), strict=True)),
                component_scores=(
                    {"trees": float(raw[i]), "cnn": float(cnn[i])} if m.needs_pictures else {}
                ),
            )
        )
    return out


def classify_pulses(
    x: np.ndarray,
    rate_hz: float,
    onsets_s: Sequence[float],
    model: PulseModel | None = None,
) -> list[PulseDecision]:
    """Classify impulses whose onsets (seconds from the start of ``x``) a picker found."""
    y = resample(x, rate_hz, ANALYSIS_RATE_HZ)
    idx = [round(t * ANALYSIS_RATE_HZ) for t in onsets_s]
    feats, pics = inputs_at(y, idx, model)
    snrs = [float(f[0]) for f in feats]
    return decide(feats, list(onsets_s), snrs, model, pics)


def classify_audio(
    x: np.ndarray,
    rate_hz: float,
    model: PulseModel | None = None,
    *,
    trigger_db: float = 8.0,
) -> list[PulseDecision]:
    """Find the impulses in a block of audio and classify each of them."""
    y = resample(x, rate_hz, ANALYSIS_RATE_HZ)
    imps = find_impulses(y, ANALYSIS_RATE_HZ, threshold_db=trigger_db)
    feats, pics = inputs_at(y, [i.index for i in imps], model)
    return decide(feats, [i.t_s for i in imps], [i.snr_db for i in imps], model, pics)
