"""Classify an incident as it enters the review queue, from the evidence the server holds.

Each pulse's audio snippet (1 s before to 1 s after the arrival) is scored by the packaged
pulse model (classify branch); the sensors' scores per shot are fused into one calibrated
probability with its terms (acoustic, spatial, cadence). The console shows the probability,
the label scores and the terms as the explanation. Without audio the incident is left as the
pipeline made it (stated on the incident, not guessed).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from shotwatch.api.media import EvidenceIndex
from shotwatch.classification.fusion import SensorScore, fuse_incident
from shotwatch.classification.pulse import classify_pulses
from shotwatch.core.model import Incident


def classify_incident(inc: Incident, evidence: EvidenceIndex) -> Incident:
    shots = evidence.incident_shots(inc)
    scores: dict[str, list[SensorScore]] = {}
    label_sum: dict[str, float] = {}
    n_pulses = 0
    for shot in shots:
        for pid in shot.pulse_ids:
            pulse = evidence.pulses.get(pid)
            clip = evidence.audio.get(pid)
            if pulse is None or clip is None:
                continue
            onset_s = pulse.t_s - clip.start_s
            if not 0.0 <= onset_s < len(clip.samples) / clip.rate_hz:
                continue
            decisions = classify_pulses(clip.samples.astype(float), clip.rate_hz, [onset_s])
            if not decisions:
                continue
            d = decisions[0]
            n_pulses += 1
            for k, v in d.label_scores.items():
                label_sum[k] = label_sum.get(k, 0.0) + v
            level = pulse.level_db_spl if math.isfinite(pulse.level_db_spl) else None
            scores.setdefault(shot.shot_id, []).append(
                SensorScore(
                    pulse.sensor,
                    d.score,
                    d.label,
                    pulse.x_m,
                    pulse.y_m,
                    pulse.z_m,
                    level,
                    d.model_version,
                )
            )
    usable = [s for s in shots if scores.get(s.shot_id)]
    if not usable:
        return replace(
            inc,
            extra={
                **inc.extra,
                "classification": {
                    "scores": {},
                    "explanation": "no audio snippets attached: not classified",
                },
            },
        )
    fused = fuse_incident(usable, scores)
    label_scores = {k: v / n_pulses for k, v in sorted(label_sum.items())}
    terms = ", ".join(f"{k} {v:+.2f}" for k, v in fused.terms.items())
    info: dict[str, Any] = {
        "scores": {"gunfire (fused)": fused.probability, **label_scores},
        "label": fused.label,
        "explanation": f"log-odds {fused.log_odds:+.2f} = {terms} "
        f"({n_pulses} sensor snippets over {len(usable)} shots; {fused.version})",
        "fusion": fused.to_dict(),
    }
    return replace(
        inc, gunfire_probability=fused.probability, extra={**inc.extra, "classification": info}
    )
