"""Floor on real audio from firing positions the shipped model never saw (FP5, FP6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bench.classify_data import ANALYSIS_RATE_HZ, load_pittsburgh

from shotwatch.classification.model import default_model, packaged_model_path
from shotwatch.classification.pulse import classify_audio

pytestmark = pytest.mark.realdata
CLIP = int(2.0 * ANALYSIS_RATE_HZ)


def _is_gun(x: np.ndarray) -> bool:
    return any(d.gunshot for d in classify_audio(x, ANALYSIS_RATE_HZ))


def test_packaged_model_was_not_trained_on_the_held_out_positions() -> None:
    card = json.loads((packaged_model_path().parent / "pulse-model.json").read_text())
    assert set(card["train_fps"]).isdisjoint({"FP5", "FP6"})
    assert card["version"] == default_model().version


def test_held_out_gunfire_recall_and_background_false_alarms(pittsburgh_dir: Path) -> None:
    rng = np.random.default_rng(5)
    recs = load_pittsburgh(pittsburgh_dir.parent, ("FP5", "FP6"))
    hits = []
    for rec in recs:
        for s in rec.shot_s:
            start = int((s - rng.uniform(0.3, 1.7)) * ANALYSIS_RATE_HZ)
            start = max(0, min(start, len(rec.x) - CLIP))
            hits.append(_is_gun(rec.x[start : start + CLIP]))
    alarms = []
    for rec in recs:
        for a, b in rec.background_stretches():
            for c in range(a, b - CLIP + 1, CLIP):
                alarms.append(_is_gun(rec.x[c : c + CLIP]))
    assert len(hits) > 300 and len(alarms) > 150
    recall = float(np.mean(hits))
    false_alarm = float(np.mean(alarms))
    # Floors a little under the benchmark (94.9 % / 1.2 %, bench/results/classify_eval.json;
    # these clip windows give 94.3 %); the targets are 95 % / 2 % (recall still misses
    # it, see docs/benchmarks.md).
    assert recall >= 0.90, f"recall {recall:.3f} on {len(hits)} held-out gunshot clips"
    assert false_alarm <= 0.02, f"false alarms {false_alarm:.3f} on {len(alarms)} background clips"


def test_a_sensor_that_hears_the_shots_brighter_than_training_is_not_lost(
    pittsburgh_dir: Path,
) -> None:
    """FP6's sensor BNG-5609 (222 m) hears the shots brighter than every training pulse: the
    same training without the spectral-tilt augmentation flags 50 % of its pulses, with it
    69 % (ADR 0045). Per pulse, at the impulse the finder reports there."""
    from bench.classify_data import MATCH_S, TRIGGER_DB

    from shotwatch.classification.impulses import find_impulses
    from shotwatch.classification.pulse import decide, inputs_at

    recs = [
        r for r in load_pittsburgh(pittsburgh_dir.parent, ("FP6",)) if r.serial == "SCP-00-BNG-5609"
    ]
    flags = []
    for rec in recs:
        imps = find_impulses(rec.x, ANALYSIS_RATE_HZ, threshold_db=TRIGGER_DB)
        t = np.array([i.t_s for i in imps])
        for s in rec.shot_s:
            if t.size and np.min(np.abs(t - s)) <= MATCH_S:
                i = imps[int(np.argmin(np.abs(t - s)))]
                feats, pics = inputs_at(rec.x, [i.index])
                flags.append(decide(feats, [i.t_s], [i.snr_db], None, pics)[0].gunshot)
    assert len(flags) >= 30
    assert float(np.mean(flags)) >= 0.6, f"{np.mean(flags):.2f} of {len(flags)} pulses flagged"


def test_chicago_gunfire_files_are_flagged(chicago_dir: Path) -> None:
    """Another city's network and another vendor's sensors, never used in training."""
    import soundfile as sf

    flagged, total = 0, 0
    for d in ("district5-incident-556267", "district7-request-4072698"):
        for f in sorted((chicago_dir / d).glob("*.wav")):
            x, sr = sf.read(f, dtype="float64", always_2d=True)
            total += 1
            flagged += any(dd.gunshot for dd in classify_audio(x.mean(axis=1), sr))
    assert total == 10
    assert flagged >= 9, f"{flagged}/{total} Chicago gunfire files flagged"
