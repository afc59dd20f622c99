"""Incident-level fusion: all the sensors that heard each shot, the spatial pattern of their
levels and the cadence of the rounds, combined into one calibrated probability of gunfire.

A pure function over the shared data model (:class:`~shotwatch.core.model.ShotLocation`) and
per-sensor pulse scores. Evidence is added as log-likelihood ratios (naive Bayes), with two
corrections that keep the result calibrated rather than over-confident:

- sensors hearing the same shot share the source and most of the path, so their evidence is
  correlated; ``n`` sensors count as ``n / (1 + (n - 1) rho)`` independent ones
  (``SENSOR_RHO``), and rounds of one incident likewise (``ROUND_RHO``);
- every term is bounded, so no single cue can decide alone.

Terms (see ADR 0042 for the physics and the numbers):

``acoustic``
    per-sensor calibrated pulse scores (equal prior odds) as log-odds, averaged per shot and
    scaled by the effective sensor count, then averaged over rounds and scaled likewise.
``spatial``
    levels at the sensors against the located position: a shot at street level falls off with
    the ground distance (20 log10 r); an aerial burst (fireworks shell at 50-300 m) gives
    levels nearly flat with ground distance. If an elevated source explains the levels much
    better (by more than the extra parameter costs), that counts against gunfire. A large
    arrival-time misfit (an extended or moving source, or a mis-association) and a located
    height far above the sensors count against too.
``cadence``
    firearms cannot cycle faster than ~25 rounds/s (40 ms); long irregular trains of pops
    (firecracker strings, crackle) differ from fire at a human or a mechanism's cadence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from shotwatch.classification.model import GUNSHOT
from shotwatch.core.errors import InputError
from shotwatch.core.model import ShotLocation

FUSION_VERSION = "fusion-nb-1"
SENSOR_RHO = 0.5
ROUND_RHO = 0.7
MAX_PULSE_LOGIT = 6.0
LEVEL_SIGMA_DB = 4.0
AERIAL_HEIGHTS_M = (50.0, 100.0, 200.0, 300.0)
ABSORPTION_DB_PER_M = 0.005
MIN_FIREARM_INTERVAL_S = 0.04


@dataclass(frozen=True, slots=True)
class SensorScore:
    """One sensor's pulse decision for one shot."""

    sensor: str
    score: float
    label: str
    x_m: float
    y_m: float
    z_m: float = 0.0
    level_db: float | None = None
    model_version: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.score) and 0.0 <= self.score <= 1.0):
            raise InputError(
                f"sensor score {self.sensor}", "score", f"must be in [0, 1], got {self.score}"
            )


@dataclass(frozen=True)
class IncidentClassification:
    """The fused decision, with every term that produced it (for reviewers and audit)."""

    probability: float
    gunshot: bool
    label: str
    log_odds: float
    terms: dict[str, float]
    details: dict[str, object] = field(default_factory=dict)
    version: str = FUSION_VERSION
    pulse_model_versions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "probability": round(self.probability, 4),
            "gunshot": self.gunshot,
            "label": self.label,
            "log_odds": round(self.log_odds, 3),
            "terms": {k: round(v, 3) for k, v in self.terms.items()},
            "details": self.details,
            "version": self.version,
            "pulse_model_versions": list(self.pulse_model_versions),
        }


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.clip(math.log(p / (1 - p)), -MAX_PULSE_LOGIT, MAX_PULSE_LOGIT))


def effective_count(n: int, rho: float) -> float:
    """Independent-equivalent count of ``n`` equally correlated pieces of evidence."""
    return n / (1.0 + (n - 1) * rho) if n > 0 else 0.0


def _level_sse(levels: np.ndarray, ground_r: np.ndarray, height_m: float) -> float:
    r = np.sqrt(ground_r**2 + height_m**2)
    model = -20.0 * np.log10(np.maximum(r, 1.0)) - ABSORPTION_DB_PER_M * r
    offset = float(np.mean(levels - model))  # the unknown source level, fitted
    return float(np.sum((levels - model - offset) ** 2))


def spatial_term(
    shot: ShotLocation, scores: Sequence[SensorScore]
) -> tuple[float, dict[str, object]]:
    """Log-likelihood ratio (<= 0) from the level pattern, timing misfit and located height."""
    detail: dict[str, object] = {}
    term = 0.0
    with_level = [s for s in scores if s.level_db is not None and math.isfinite(s.level_db)]
    if len(with_level) >= 4:
        levels = np.array([float(s.level_db) for s in with_level])  # type: ignore[arg-type]
        ground_r = np.array([math.hypot(s.x_m - shot.x_m, s.y_m - shot.y_m) for s in with_level])
        sse_ground = _level_sse(levels, ground_r, 1.5)
        sse_air = {h: _level_sse(levels, ground_r, h) for h in AERIAL_HEIGHTS_M}
        best_h = min(sse_air, key=lambda h: sse_air[h])
        llr_aerial = (sse_ground - sse_air[best_h]) / (2 * LEVEL_SIGMA_DB**2)
        llr_aerial -= 0.5 * math.log(len(with_level))  # the height is one more fitted parameter
        term -= float(np.clip(llr_aerial, 0.0, 4.0))
        detail.update(
            level_rms_ground_db=round(math.sqrt(sse_ground / len(levels)), 2),
            level_rms_aerial_db=round(math.sqrt(sse_air[best_h] / len(levels)), 2),
            aerial_height_m=best_h,
        )
    rms_ms = shot.residual_rms_s * 1000.0
    if math.isfinite(rms_ms):
        term -= float(np.clip((rms_ms - 3.0) / 3.0, 0.0, 2.0))
        detail["residual_rms_ms"] = round(rms_ms, 2)
    if shot.dims == 3 and scores:
        above = shot.z_m - float(np.mean([s.z_m for s in scores]))
        term -= float(np.clip((above - 30.0) / 30.0, 0.0, 2.0))
        detail["height_above_sensors_m"] = round(above, 1)
    return term, detail


def cadence_term(times_s: Sequence[float]) -> tuple[float, dict[str, object]]:
    """Log-likelihood ratio from the timing of the rounds (bounded to [-2, +1])."""
    t = np.sort(np.asarray(times_s, dtype=np.float64))
    if len(t) < 2:
        return 0.0, {"rounds": len(t)}
    iv = np.diff(t)
    cv = float(np.std(iv) / (np.mean(iv) + 1e-9))
    detail: dict[str, object] = {
        "rounds": len(t),
        "min_interval_s": round(float(iv.min()), 4),
        "interval_cv": round(cv, 3),
    }
    term = 0.0
    if iv.min() < MIN_FIREARM_INTERVAL_S:
        term -= 1.5  # faster than any firearm cycles
    if len(t) >= 12 and cv > 0.5:
        term -= 1.0  # long irregular train: a firecracker string or crackle
    if len(t) >= 4 and cv < 0.2 and 0.05 <= float(np.median(iv)) <= 0.15:
        term += 1.0  # sustained mechanical cadence of automatic fire
    elif (
        len(t) <= 10 and 0.08 <= float(np.median(iv)) <= 2.0 and iv.min() >= MIN_FIREARM_INTERVAL_S
    ):
        term += 0.3  # a few rounds at a trigger finger's pace
    return float(np.clip(term, -2.0, 1.0)), detail


def fuse_incident(
    shots: Sequence[ShotLocation],
    sensor_scores: Mapping[str, Sequence[SensorScore]],
    *,
    prior_log_odds: float = 0.0,
    threshold: float = 0.5,
) -> IncidentClassification:
    """Fuse the per-sensor pulse scores of every shot of an incident.

    ``sensor_scores`` maps each shot's ``shot_id`` to the decisions of the sensors that heard
    it. ``prior_log_odds`` is the deployment's base rate (0 = even odds, the convention the
    pulse model is calibrated at).
    """
    if not shots:
        raise InputError("incident", "shots", "at least one located shot is needed")
    shot_terms = []
    spatial = []
    shot_details: list[dict[str, object]] = []
    details: dict[str, object] = {"shots": shot_details}
    labels: dict[str, float] = {}
    versions: set[str] = set()
    for shot in shots:
        scores = list(sensor_scores.get(shot.shot_id, ()))
        if not scores:
            raise InputError(
                f"shot {shot.shot_id}", "sensor_scores", "no sensor scores for this shot"
            )
        logits = [_logit(s.score) for s in scores]
        n_eff = effective_count(len(scores), SENSOR_RHO)
        shot_terms.append(float(np.mean(logits)) * n_eff)
        sp, sp_detail = spatial_term(shot, scores)
        spatial.append(sp)
        for s in scores:
            versions.add(s.model_version)
            if s.label != GUNSHOT:
                labels[s.label] = labels.get(s.label, 0.0) + (1.0 - s.score)
        shot_details.append(
            {
                "shot_id": shot.shot_id,
                "sensors": len(scores),
                "mean_logit": round(float(np.mean(logits)), 3),
                **sp_detail,
            }
        )
    n_rounds_eff = effective_count(len(shots), ROUND_RHO)
    acoustic = float(np.mean(shot_terms)) * n_rounds_eff
    spatial_mean = float(np.mean(spatial))
    cad, cad_detail = cadence_term([s.t0_s for s in shots])
    details["cadence"] = cad_detail
    terms = {"prior": prior_log_odds, "acoustic": acoustic, "spatial": spatial_mean, "cadence": cad}
    z = sum(terms.values())
    prob = 1.0 / (1.0 + math.exp(-float(np.clip(z, -50, 50))))
    is_gun = prob >= threshold
    if is_gun:
        label = GUNSHOT
    elif spatial_mean <= -1.0 and any("aerial_height_m" in d for d in shot_details):
        label = "fireworks"
    elif cad <= -1.0:
        label = "firecracker"
    else:
        label = max(labels, key=lambda k: labels[k]) if labels else "other"
    return IncidentClassification(
        probability=prob,
        gunshot=is_gun,
        label=label,
        log_odds=z,
        terms=terms,
        details=details,
        pulse_model_versions=tuple(sorted(v for v in versions if v)),
    )
