"""The convolutional half of the pulse model: pictures, the numpy network, the model file."""

from __future__ import annotations

import numpy as np
import pytest

from shotwatch.classification import synth
from shotwatch.classification.cnn import ConvNet, conv3x3, maxpool2
from shotwatch.classification.dsp import ANALYSIS_RATE_HZ, resample
from shotwatch.classification.features import extract_snippet
from shotwatch.classification.model import PulseModel, default_model, packaged_model_path
from shotwatch.classification.patch import PATCH_BANDS, PATCH_FRAMES, log_patch
from shotwatch.classification.pulse import classify_audio, features_at, patches_at
from shotwatch.core.errors import InputError

SR = ANALYSIS_RATE_HZ


def _blast_in_noise(gain: float = 0.3, seed: int = 0) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(2 * SR) * 1e-3
    dry = synth.SOURCES["gunshot"](np.random.default_rng(seed), "train")
    sig = resample(dry / np.max(np.abs(dry)), synth.SYNTH_RATE_HZ, SR)
    at = SR // 2
    m = min(len(sig), len(x) - at)
    x[at : at + m] += gain * sig[:m]
    return x, at


def _naive_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    n, _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd))
    for o in range(w.shape[0]):
        for i in range(h):
            for j in range(wd):
                out[:, o, i, j] = (
                    np.sum(xp[:, :, i : i + 3, j : j + 3] * w[o], axis=(1, 2, 3)) + b[o]
                )
    return out


def test_conv_and_pool_match_the_plain_definitions() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    np.testing.assert_allclose(conv3x3(x, w, b), _naive_conv(x, w, b), atol=1e-5)
    p = maxpool2(x)
    assert p.shape == (2, 3, 3, 3)
    assert p[1, 2, 1, 2] == x[1, 2, 2:4, 4:6].max()


def test_network_output_follows_its_layout() -> None:
    # One conv layer whose kernel copies the centre pixel; the head reads band 2's time-max.
    w = np.zeros((1, 1, 3, 3), np.float32)
    w[0, 0, 1, 1] = 1.0
    fc = np.zeros(2 * 1 * 4, np.float32)  # [max over time per band; mean over time per band]
    fc[2] = 2.0
    net = ConvNet((w,), (np.zeros(1, np.float32),), fc, 0.5)
    pic = np.zeros((1, 4, 5), np.float32)
    pic[0, 2, 3] = 1.5
    pic[0, 1, 0] = -3.0  # removed by the ReLU
    assert net.logit(pic)[0] == pytest.approx(0.5 + 2.0 * 1.5)


def test_picture_shows_the_impulse_and_ignores_the_level() -> None:
    x, at = _blast_in_noise()
    pic = log_patch(extract_snippet(x, at))
    assert pic.shape == (PATCH_BANDS, PATCH_FRAMES) and pic.dtype == np.float32
    before, onset = pic[:, :4], pic[:, 6:12]
    assert np.median(before) < 0.3 < float(onset.max())  # dB over noise, /20
    np.testing.assert_allclose(log_patch(extract_snippet(20.0 * x, at)), pic, atol=1e-4)


def test_picture_of_a_file_start_uses_the_quiet_frames_for_noise() -> None:
    x, at = _blast_in_noise()
    pic = log_patch(extract_snippet(x[at - 10 :], 10))  # no noise before the onset
    assert np.all(np.isfinite(pic)) and float(pic.max()) > 0.5


def _model_with_a_network(seed: int = 0) -> dict[str, np.ndarray]:
    """The packaged model's arrays plus a small random network (as a trained one is stored)."""
    with np.load(packaged_model_path(), allow_pickle=False) as z:
        data = {k: z[k] for k in z.files if not k.startswith("cnn_")}
    rng = np.random.default_rng(seed)
    chans = (1, 4, 4, 4)
    for i in range(3):
        data[f"cnn_w{i}"] = rng.normal(0, 0.3, (chans[i + 1], chans[i], 3, 3)).astype(np.float32)
        data[f"cnn_b{i}"] = rng.normal(0, 0.1, chans[i + 1]).astype(np.float32)
    data["cnn_layers"] = np.array(3)
    data["cnn_fc_w"] = rng.normal(0, 0.1, 2 * 4 * (PATCH_BANDS // 4)).astype(np.float32)
    data["cnn_fc_b"] = np.array(0.2)
    data["cnn_coef"] = np.array(0.7)
    data["patch_shape"] = np.array([PATCH_BANDS, PATCH_FRAMES])
    return data


def test_a_model_with_a_network_mixes_both_parts_and_records_them() -> None:
    m = PulseModel.from_arrays(_model_with_a_network())
    assert m.needs_pictures
    x, at = _blast_in_noise()
    (d,) = [d for d in classify_audio(x, SR, m) if abs(d.t_s - 0.5) < 0.01]
    assert set(d.component_scores) == {"trees", "cnn"}
    assert d.component_scores["cnn"] != 0.0
    z = m.platt_a * d.component_scores["trees"] + m.cnn_coef * d.component_scores["cnn"]
    assert d.score == pytest.approx(1.0 / (1.0 + np.exp(-(z + m.platt_b))), abs=1e-9)
    assert d.to_dict()["component_scores"] == {
        k: round(v, 4) for k, v in d.component_scores.items()
    }
    with pytest.raises(InputError, match="picture"):
        m.probability(features_at(x, [at]))
    p = m.probability(features_at(x, [at]), patches_at(x, [at]))
    assert p[0] == pytest.approx(d.score, abs=0.05)  # onset from the finder vs given


def test_trees_only_model_needs_no_picture() -> None:
    m = default_model()
    x, at = _blast_in_noise()
    if m.needs_pictures:
        pytest.skip("the packaged model has a network (covered above)")
    p = m.probability(features_at(x, [at]))
    assert p.shape == (1,) and 0.0 <= p[0] <= 1.0
    (d,) = [d for d in classify_audio(x, SR) if abs(d.t_s - 0.5) < 0.01]
    assert d.component_scores == {} and "component_scores" not in d.to_dict()


def test_model_file_with_a_broken_network_is_refused() -> None:
    data = _model_with_a_network()
    PulseModel.from_arrays(data, "test-model")  # complete: loads
    bad = dict(data)
    bad["patch_shape"] = np.array([PATCH_BANDS, PATCH_FRAMES + 1])
    with pytest.raises(InputError, match="patch_shape"):
        PulseModel.from_arrays(bad, "test-model")
    bad = dict(data)
    del bad["cnn_w1"]
    with pytest.raises(InputError, match="cnn_w1"):
        PulseModel.from_arrays(bad, "test-model")
    bad = dict(data)
    del bad["cnn_coef"]
    with pytest.raises(InputError, match="cnn_coef"):
        PulseModel.from_arrays(bad, "test-model")


def test_threshold_rule_counts_clip_context_and_original_copies_only() -> None:
    from bench.classify_data import is_augmented_copy
    from bench.classify_train import CONTEXT, rate_family

    assert not is_augmented_copy("g12-0-3") and is_augmented_copy("g12-2-3")
    assert is_augmented_copy("b4-1-0") and not is_augmented_copy("fireworks-train-7")
    fam = np.array(["real_gunshot", CONTEXT, "office"])
    assert rate_family(fam).tolist() == ["real_gunshot", "real_gunshot", "office"]
