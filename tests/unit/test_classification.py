"""Pulse features, impulse finder, packaged model and incident fusion."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from shotwatch.classification import synth
from shotwatch.classification.dsp import ANALYSIS_RATE_HZ, resample
from shotwatch.classification.features import FEATURE_NAMES, extract_snippet, pulse_features
from shotwatch.classification.fusion import (
    SensorScore,
    cadence_term,
    effective_count,
    fuse_incident,
)
from shotwatch.classification.impulses import find_impulses
from shotwatch.classification.model import PulseModel, default_model, packaged_model_path
from shotwatch.classification.pulse import classify_audio, classify_pulses
from shotwatch.core.errors import InputError
from shotwatch.core.model import ShotLocation

SR = ANALYSIS_RATE_HZ


def _noise(seconds: float, seed: int = 0, level: float = 1e-3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * SR)) * level


def _source(family: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dry = synth.SOURCES[family](rng, "train")
    return resample(dry / np.max(np.abs(dry)), synth.SYNTH_RATE_HZ, SR)


def _embed(
    sig: np.ndarray, at_s: float = 0.5, seconds: float = 2.0, gain: float = 0.3
) -> np.ndarray:
    x = _noise(seconds)
    a = int(at_s * SR)
    m = min(len(sig), len(x) - a)
    x[a : a + m] += gain * sig[:m]
    return x


def _features(x: np.ndarray, at_s: float = 0.5) -> dict[str, float]:
    imps = find_impulses(x, SR)
    first = min(imps, key=lambda i: abs(i.t_s - at_s))
    return dict(zip(FEATURE_NAMES, pulse_features(extract_snippet(x, first.index)), strict=True))


# --- impulse finder -------------------------------------------------------------------------


def test_impulse_finder_locates_a_blast_in_noise() -> None:
    blast = resample(
        synth.friedlander(synth.SYNTH_RATE_HZ, 1e-3, 1.5, 0.05), synth.SYNTH_RATE_HZ, SR
    )
    x = _embed(blast, at_s=1.234)
    imps = find_impulses(x, SR)
    assert imps, "no impulse found"
    assert min(abs(i.t_s - 1.234) for i in imps) < 0.003


def test_impulse_finder_quiet_on_stationary_noise_and_padding() -> None:
    x = np.concatenate([np.zeros(SR), _noise(3.0, seed=3)])  # digital silence, then noise
    assert find_impulses(x, SR) == []


# --- features -------------------------------------------------------------------------------


def test_feature_vector_shape_and_finiteness() -> None:
    f = pulse_features(extract_snippet(_embed(_source("gunshot", 1)), int(0.5 * SR)))
    assert f.shape == (len(FEATURE_NAMES),)
    assert np.all(np.isfinite(f))


def test_blast_rises_faster_than_a_door_slam_and_speech() -> None:
    gun = _features(_embed(_source("gunshot_close", 2)))
    door = _features(_embed(_source("door_slam", 2)))
    talk = _features(_embed(_source("speech", 2)))
    assert gun["rise_ms"] < 1.0
    assert door["rise_ms"] > gun["rise_ms"]
    assert talk["rise_ms"] > 2 * gun["rise_ms"]
    # Speech is voiced; a blast is not.
    assert talk["periodicity_excess"] > gun["periodicity_excess"] + 0.1


def test_crackle_has_more_pops_and_a_shell_burst_a_longer_low_phase() -> None:
    rng = np.random.default_rng(11)
    blast = resample(
        synth.friedlander(synth.SYNTH_RATE_HZ, 1e-3, 1.5, 0.05), synth.SYNTH_RATE_HZ, SR
    )
    crackle = np.zeros(int(0.9 * SR))
    crackle[: len(blast)] += blast
    for at in rng.uniform(0.03, 0.85, 60):
        pop = resample(
            synth.friedlander(synth.SYNTH_RATE_HZ, 0.1e-3, 2.0, 0.004), synth.SYNTH_RATE_HZ, SR
        )
        a = int(at * SR)
        crackle[a : a + len(pop)] += rng.uniform(0.2, 0.6) * pop[: len(crackle) - a]
    boom = resample(synth.friedlander(synth.SYNTH_RATE_HZ, 8e-3, 1.0, 0.3), synth.SYNTH_RATE_HZ, SR)
    gun = _features(_embed(blast))
    cr = _features(_embed(crackle))
    shell = _features(_embed(boom))
    assert cr["pop_rate_per_s"] > 10 * max(gun["pop_rate_per_s"], 1.0)
    assert cr["pop_share"] > gun["pop_share"]
    assert shell["pos_phase_lf_ms"] > 3 * gun["pos_phase_lf_ms"]


def test_features_do_not_depend_on_absolute_level() -> None:
    x = _embed(_source("gunshot", 4))
    onset = min(find_impulses(x, SR), key=lambda i: abs(i.t_s - 0.5)).index
    a = pulse_features(extract_snippet(x, onset))
    b = pulse_features(extract_snippet(x * 20.0, onset))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_resampling_keeps_features_close() -> None:
    x = _embed(_source("gunshot", 5))
    y = resample(resample(x, SR, 44_100), 44_100, SR)[: len(x)]
    fa, fb = _features(x), _features(y)
    assert abs(fa["rise_ms"] - fb["rise_ms"]) < 0.5
    assert abs(fa["centroid_hz"] - fb["centroid_hz"]) < 0.1 * fa["centroid_hz"] + 30


# --- packaged model -------------------------------------------------------------------------


def test_model_loads_from_the_package_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_a: object, **_k: object) -> None:
        raise AssertionError("the model must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    model = PulseModel.load(packaged_model_path())
    assert packaged_model_path().suffix == ".npz"
    assert model.version.startswith("pulse-gbt")
    assert model.feature_names == FEATURE_NAMES
    assert 0.5 <= model.threshold < 1.0


def test_model_file_with_other_features_is_refused(tmp_path: pytest.TempPathFactory) -> None:
    with np.load(packaged_model_path(), allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data["feature_names"] = np.array([*FEATURE_NAMES[:-1], "something_else"])
    with pytest.raises(InputError, match="feature_names"):
        PulseModel.from_arrays(data, "test-model")
    del data["platt_a"]
    with pytest.raises(InputError, match="platt_a"):
        PulseModel.from_arrays(data, "test-model")


def test_scores_are_deterministic_probabilities_with_audit_fields() -> None:
    x = _embed(_source("gunshot", 6)) + _embed(_source("knock", 6), at_s=1.3)
    a = classify_audio(x, SR)
    b = classify_audio(x, SR)
    assert a and [d.score for d in a] == [d.score for d in b]
    for d in a:
        assert 0.0 <= d.score <= 1.0
        assert d.model_version == default_model().version
        assert set(d.features) == set(FEATURE_NAMES)
        assert abs(sum(d.label_scores.values()) - 1.0) < 1e-9
        assert d.gunshot == (d.score >= default_model().threshold)
        assert d.label == "gunshot" if d.gunshot else d.label != "gunshot"


def test_tree_evaluation_matches_scikit_learn() -> None:
    from bench.classify_train import export_trees
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, len(FEATURE_NAMES)))
    y = (X[:, 0] + 0.5 * X[:, 3] ** 2 > 0.4).astype(int)
    clf = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    with np.load(packaged_model_path(), allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data.update(export_trees(clf, X))
    m = PulseModel.from_arrays(data)
    np.testing.assert_allclose(m.raw_score(X), clf.decision_function(X), atol=1e-9)


def test_threshold_balances_the_targets_on_clip_rates() -> None:
    from bench.classify_train import CLIP_TARGET, choose_threshold, clip_rate

    # A clip is flagged when any of its impulses is.
    p = np.array([0.2, 0.9, 0.3, 0.4])
    clips = np.array(["a", "a", "b", "b"])
    assert clip_rate(p, clips, 0.8) == 0.5
    assert clip_rate(p, clips, 0.35) == 1.0
    # Gunfire scores spread over 0.5-1, background low, fireworks up to 0.8: the rule must
    # cut fireworks (target 10 %) without giving up recall (target 95 %), i.e. sit just above
    # the fireworks scores, not at the 0.99 ceiling.
    rng = np.random.default_rng(0)
    gun = rng.uniform(0.78, 1.0, 1000)
    bg = rng.uniform(0.0, 0.3, 1000)
    fw = rng.uniform(0.0, 0.8, 1000)
    p = np.concatenate([gun, bg, fw])
    fam = np.array(["real_gunshot"] * 1000 + ["real_background"] * 1000 + ["fireworks"] * 1000)
    th, curve = choose_threshold(p, fam, np.arange(3000).astype(str))
    assert 0.72 <= th <= 0.8
    assert {"threshold", "worst_ratio", "real_gunshot"} <= set(curve[0])
    assert set(CLIP_TARGET) >= {"real_gunshot", "real_background", "fireworks", "office"}


def test_classify_pulses_at_given_onsets_any_rate() -> None:
    x = _embed(_source("gunshot_close", 7), at_s=0.8)
    x44 = resample(x, SR, 44_100)
    d12 = classify_pulses(x, SR, [0.8])
    d44 = classify_pulses(x44, 44_100, [0.8])
    assert len(d12) == len(d44) == 1
    assert abs(d12[0].score - d44[0].score) < 0.25


# --- fusion ---------------------------------------------------------------------------------


def _shot(shot_id: str, t0: float, rms_s: float = 0.001) -> ShotLocation:
    return ShotLocation(
        shot_id=shot_id,
        t0_s=t0,
        x_m=0.0,
        y_m=0.0,
        z_m=0.0,
        pulse_ids=(),
        sensors=(),
        residuals_s={},
        residual_rms_s=rms_s,
        uncertainty_m=5.0,
        ellipse=None,
        covariance=None,
        dims=2,
        quality=1.0,
    )


#: Sensors from 40 m to 1.1 km of the source: the near ones are where a 250-m-high burst and a
#: street-level shot differ (the burst is never closer than its height).
SENSOR_XY = [(30.0, 25.0), (-60.0, 50.0), (300.0, -100.0), (-80.0, -650.0), (900.0, 700.0)]


def _scores(
    score: float, *, aerial_height_m: float | None = None, label: str = "gunshot"
) -> list[SensorScore]:
    out = []
    for i, (x, y) in enumerate(SENSOR_XY):
        r = np.hypot(x, y)
        if aerial_height_m is not None:
            r = np.hypot(r, aerial_height_m)
        level = 150.0 - 20 * np.log10(r) - 0.005 * r + (0.7 if i % 2 else -0.7)
        out.append(SensorScore(f"S{i}", score, label, x, y, 0.0, float(level), "pulse-gbt-test"))
    return out


def test_fusion_of_confident_sensors_is_confident_and_bounded() -> None:
    shots = [_shot("a", 0.0), _shot("b", 0.4), _shot("c", 0.85)]
    res = fuse_incident(shots, {s.shot_id: _scores(0.9) for s in shots})
    assert res.gunshot and res.label == "gunshot"
    assert 0.95 < res.probability < 1.0
    assert res.pulse_model_versions == ("pulse-gbt-test",)
    low = fuse_incident(shots, {s.shot_id: _scores(0.1, label="door_slam") for s in shots})
    assert not low.gunshot and low.label == "door_slam" and low.probability < 0.05


def test_fusion_is_less_confident_than_independent_naive_bayes() -> None:
    shots = [_shot("a", 0.0)]
    res = fuse_incident(shots, {"a": _scores(0.8)})
    naive = 1 / (1 + np.exp(-5 * np.log(4.0)))  # five independent sensors at 0.8
    assert 0.8 < res.probability < naive
    assert effective_count(1, 0.5) == 1.0
    assert effective_count(5, 0.5) == pytest.approx(5 / 3)


def test_aerial_level_pattern_counts_against_gunfire() -> None:
    shots = [_shot("a", 0.0)]
    ground = fuse_incident(shots, {"a": _scores(0.7)})
    aerial = fuse_incident(shots, {"a": _scores(0.7, aerial_height_m=250.0)})
    assert ground.terms["spatial"] == pytest.approx(0.0, abs=0.2)
    assert aerial.terms["spatial"] < -1.0
    assert aerial.probability < ground.probability
    assert aerial.label == "fireworks"


def test_cadence_terms() -> None:
    assert cadence_term([0.0])[0] == 0.0
    auto = cadence_term(np.arange(8) * 0.09)[0]
    human = cadence_term([0.0, 0.45, 1.1])[0]
    crackle = cadence_term(np.cumsum(np.random.default_rng(1).exponential(0.03, 30)))[0]
    assert auto == 1.0
    assert human > 0
    assert crackle <= -1.5


def test_fusion_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="shots"):
        fuse_incident([], {})
    with pytest.raises(InputError, match="sensor_scores"):
        fuse_incident([_shot("a", 0.0)], {})
    with pytest.raises(InputError, match="score"):
        SensorScore("S1", 1.5, "gunshot", 0.0, 0.0)


def test_band_snr_sees_a_mid_band_pulse_through_low_frequency_rumble() -> None:
    """A weak shot over loud wind/traffic rumble (FP6 sensor BNQ-1192): broadband it barely
    clears the noise, in its own band it stands well clear (ADR 0045)."""
    from shotwatch.classification.dsp import lowpass

    rng = np.random.default_rng(8)
    rumble = lowpass(rng.standard_normal(2 * SR), SR, 200.0, order=4) * 0.05
    blast = resample(
        synth.friedlander(synth.SYNTH_RATE_HZ, 0.5e-3, 1.5, 0.03), synth.SYNTH_RATE_HZ, SR
    )
    x = rumble.copy()
    at = SR
    x[at : at + len(blast)] += 0.05 * blast
    f = dict(zip(FEATURE_NAMES, pulse_features(extract_snippet(x, at)), strict=True))
    assert f["snr_600_1500_db"] > f["snr_db"] + 10.0
    assert f["snr_600_1500_db"] > 20.0
    quiet = dict(zip(FEATURE_NAMES, pulse_features(extract_snippet(rumble, at)), strict=True))
    assert quiet["snr_600_1500_db"] < 12.0
