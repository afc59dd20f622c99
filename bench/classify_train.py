"""Train the pulse classifier and write the model shipped in the package.

    PYTHONPATH=src python3 bench/classify_train.py --data /work/shared/data \
        --out src/shotwatch/classification/model/

Fixed seeds make the result reproducible. Firing positions named by --train-fps are the only
real gunfire and real background the model sees (default FP1-FP4; FP5-FP6 are held out for
bench/classify_eval.py). Synthetic sources use the "train" parameter ranges and seed only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from bench.classify_cnn import train_cnn
from bench.classify_data import (
    Examples,
    background_pool,
    is_augmented_copy,
    load_pittsburgh,
    real_gunshot_examples,
    synthetic_examples,
)
from shotwatch.classification.cnn import ConvNet
from shotwatch.classification.features import FEATURE_NAMES
from shotwatch.classification.model import GUNSHOT, MODEL_FILE, PulseModel
from shotwatch.classification.patch import PATCH_BANDS, PATCH_FRAMES
from shotwatch.classification.synth import FAMILY_LABEL

VERSION_PREFIX = "pulse-gbt4"
LABELS = (GUNSHOT, "fireworks", "firecracker", "backfire", "door_slam", "knock", "impact", "other")
#: Share of the total training weight per source (positives and negatives each sum to 1).
#: Synthetic *distant* gunfire gets none (ADR 0118): on the training positions' own sensors
#: it is far duller than the real distant shots it stands in for (spectral centroid p10 / median
#: 227 / 410 Hz against 475 / 608 Hz, 20-150 Hz share -6 dB against -15 dB), so as a positive
#: it taught the trees that a low boom can be a shot, and fireworks shells are low booms. Its
#: rows are still made and scored out of fold, and reported.
POS_SHARE = {"real_gunshot": 0.8, "gunshot": 0.0, "gunshot_close": 0.2}
NEG_REAL_BACKGROUND_SHARE = 0.3
#: The issue's per-clip targets, as budgets on the rate of wrong decisions: false alarms for
#: confusers, misses for gunfire (real Pittsburgh pulses; synthetic close-range gunfire stands
#: in for "close-range recordings from other sources"). Sources the issue sets no target for
#: (firecrackers, backfires, hammering, distant synthetic gunfire) are reported, not used:
#: a firecracker pop is a small explosive blast, physically a gunshot in miniature, and
#: incident fusion (ADR 0042) separates strings of them by cadence.
CLIP_TARGET = {
    "real_gunshot": 0.05,
    "gunshot_close": 0.10,
    "real_background": 0.02,
    "fireworks": 0.10,
    "door_slam": 0.05,
    "knock": 0.05,
    "keys": 0.05,
    "drawer": 0.05,
    "speech": 0.02,
    "cough": 0.02,
    "laughter": 0.02,
    "office": 0.02,
}
#: Training-side background guard after each reported pulse: urban and hill echoes of a shot
#: arrive 2-4 s after it (seen on FP1-FP2), and an echo of gunfire is gunfire sound, not
#: background. Evaluation keeps the 2-s guard of ``classify_data.GUARD_AFTER_S``.
TRAIN_GUARD_AFTER_S = 5.0
#: Level of synthetic sources over the real background (dB, every family alike) and the share
#: of clips driven into full-scale clipping: nearby gunfire is 40-70 dB over street noise and
#: clips most recorders, and so do nearby door slams and knocks; giving every family the same
#: range keeps loudness and clipping from standing in for the class.
SYNTH_SNR_DB = (6.0, 65.0)
SYNTH_FULL_SCALE_CLIP = 0.25
#: Bumped whenever the extracted rows change meaning (invalidates --cache files).
DATA_VERSION = 6


#: Candidate weights of the network's calibrated log-odds in the mix (0 = trees only).
MIXES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Rows of the other impulses in a real gunshot's 2-s clip (scored, never trained on).
CONTEXT = "real_gunshot_context"


def family_label(family: str) -> str:
    if family in ("real_gunshot", CONTEXT):
        return GUNSHOT
    if family == "real_background":
        return "other"
    return FAMILY_LABEL[family]


def sample_weights(families: np.ndarray) -> np.ndarray:
    w = np.zeros(len(families))
    neg_fams = sorted(
        {f for f in families if family_label(f) != GUNSHOT and f != "real_background"}
    )
    for fam in set(families):
        m = families == fam
        if family_label(fam) == GUNSHOT:
            share = POS_SHARE.get(fam, 0.1)
        elif fam == "real_background":
            share = NEG_REAL_BACKGROUND_SHARE
        else:
            share = (1.0 - NEG_REAL_BACKGROUND_SHARE) / max(len(neg_fams), 1)
        w[m] = share / np.count_nonzero(m)
    return w * len(families) / w.sum()


def build_dataset(
    data_dir: Path, train_fps: tuple[str, ...], seed: int, per_family: int
) -> tuple[Examples, dict[str, object]]:
    rng = np.random.default_rng(seed)
    recs = load_pittsburgh(data_dir, train_fps)
    ex = Examples()
    missed = real_gunshot_examples(recs, ex, rng, n_aug=2, guard_after_s=TRAIN_GUARD_AFTER_S)
    pool = background_pool(recs)
    synthetic_examples(
        ex,
        rng,
        pool,
        per_family,
        "train",
        snr_db=SYNTH_SNR_DB,
        full_scale_clip=SYNTH_FULL_SCALE_CLIP,
    )
    info = {
        "train_fps": list(train_fps),
        "recordings": len(recs),
        "labelled_pulses": sum(len(r.shot_s) for r in recs),
        "pulses_missed_by_impulse_finder": missed,
        "background_stretches": len(pool),
        "synthetic_per_family": per_family,
        "seed": seed,
    }
    return ex, info


def export_trees(clf: GradientBoostingClassifier, X: np.ndarray) -> dict[str, np.ndarray]:
    """A fitted binary GradientBoostingClassifier as the plain arrays PulseModel evaluates."""
    lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
    offset = 0
    for est in clf.estimators_[:, 0]:
        t = est.tree_
        roots.append(offset)
        lefts.append(np.where(t.children_left >= 0, t.children_left + offset, -1))
        rights.append(np.where(t.children_right >= 0, t.children_right + offset, -1))
        feats.append(t.feature)
        thrs.append(t.threshold)
        vals.append(t.value[:, 0, 0])
        offset += t.node_count
    lr = float(clf.learning_rate)
    raw_trees = np.sum([e.predict(X) for e in clf.estimators_[:, 0]], axis=0)
    init = float(np.median(clf.decision_function(X) - lr * raw_trees))
    return {
        "node_left": np.concatenate(lefts).astype(np.int32),
        "node_right": np.concatenate(rights).astype(np.int32),
        "node_feature": np.concatenate(feats).astype(np.int32),
        "node_threshold": np.concatenate(thrs),
        "node_value": np.concatenate(vals),
        "tree_root": np.array(roots, dtype=np.int32),
        "init_score": np.array(init),
        "learning_rate": np.array(lr),
    }


def clip_rate(p: np.ndarray, clips: np.ndarray, th: float) -> float:
    """Share of clips with any row at or above ``th``."""
    if not p.size:
        return 0.0
    _, inv = np.unique(clips, return_inverse=True)
    top = np.full(int(inv.max()) + 1, -np.inf)
    np.maximum.at(top, inv, p)
    return float(np.mean(top >= th))


def choose_threshold(
    p_oof: np.ndarray, fam: np.ndarray, clips: np.ndarray
) -> tuple[float, list[dict[str, float]]]:
    """The calibrated probability in [0.5, 0.99] (0.5 = even odds) that minimises the worst
    out-of-fold ratio of error rate to the issue's budget over all targeted sources
    (``CLIP_TARGET``; per clip, misses for gunfire and false alarms otherwise): no target is
    given up for another. Ties go to the lower threshold."""
    fams = sorted(set(fam.tolist()))
    best, best_worst = 0.99, np.inf
    curve = []
    for th in np.round(np.arange(0.5, 0.9901, 0.01), 2):
        rates = {f: clip_rate(p_oof[fam == f], clips[fam == f], float(th)) for f in fams}
        worst = max(
            ((1.0 - rates[f]) if family_label(f) == GUNSHOT else rates[f]) / t
            for f, t in CLIP_TARGET.items()
            if f in rates
        )
        curve.append(
            {
                "threshold": float(th),
                "worst_ratio": round(worst, 3),
                **{f: round(v, 4) for f, v in rates.items()},
            }
        )
        if worst < best_worst - 1e-9:
            best, best_worst = float(th), worst
    return best, curve


def fold_ids(groups: np.ndarray, clips: np.ndarray, seed: int, k: int = 4) -> np.ndarray:
    """Cross-validation folds: each real firing position whole in one fold (leave one
    position out), so out-of-fold scores are on positions the fold's model did not see;
    synthetic clips go to a random fold whole (their impulses share one source)."""
    fps = sorted({g for g in groups if g.startswith("FP")})
    fold_rng = np.random.default_rng(seed)
    clip_fold = {c: int(fold_rng.integers(k)) for c in sorted(set(clips.tolist()))}
    return np.array(
        [fps.index(g) % k if g in fps else clip_fold[c] for g, c in zip(groups, clips, strict=True)]
    )


def rate_family(fam: np.ndarray) -> np.ndarray:
    """The source each row's clip counts for: context rows count for their gunshot clip."""
    return np.where(fam == CONTEXT, "real_gunshot", fam)


def fit(
    ex: Examples, seed: int, *, cnn: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Fit the trees (and the network, ``cnn``) with out-of-fold scores for stacking,
    calibration and the threshold; return the model arrays and a training record."""
    X, fam, groups = ex.arrays()
    clips = ex.clips()
    pics = ex.patches()
    ctx = fam == CONTEXT
    labels = np.array([family_label(f) for f in fam])
    y = (labels == GUNSHOT).astype(int)
    w = np.zeros(len(y))
    w[~ctx] = sample_weights(fam[~ctx])
    params = dict(
        n_estimators=250, max_depth=3, learning_rate=0.08, subsample=0.8, random_state=seed
    )

    # Out-of-fold scores for stacking, calibration and the threshold. Context rows (other
    # impulses in a gunshot's clip) are never trained on, only scored.
    fold = fold_ids(groups, clips, seed)
    oof = np.zeros((len(y), 2 if cnn else 1))
    for k in range(4):
        tr = np.flatnonzero((fold != k) & ~ctx)
        te = np.flatnonzero(fold == k)
        m = GradientBoostingClassifier(**params).fit(X[tr], y[tr], sample_weight=w[tr])
        oof[te, 0] = m.decision_function(X[te])
        if cnn:
            net = ConvNet.from_arrays(train_cnn(pics[tr], y[tr], w[tr], seed + k))
            oof[te, 1] = net.logit(pics[te])
    fit_rows = ~ctx
    rfam = rate_family(fam)
    # The measures are on real recordings as recorded, not on augmented copies.
    keep = np.array([not is_augmented_copy(c) for c in clips]) | ~np.char.startswith(
        fam.astype(str), "real_"
    )

    def platt(z: np.ndarray) -> tuple[float, float]:
        lr = LogisticRegression(C=1e6, max_iter=1000)
        lr.fit(z[fit_rows, None], y[fit_rows], sample_weight=w[fit_rows])
        return float(lr.coef_[0, 0]), float(lr.intercept_[0])

    # Each part calibrated on its own, then mixed: z = (1 - mix) z_trees + mix z_cnn,
    # recalibrated. The mix and the threshold are chosen together by the same rule (the
    # worst out-of-fold ratio of clip error rate to the target), ties to the smaller
    # mix: the network is used only as far as it helps the worst-served target.
    a_g, b_g = platt(oof[:, 0])
    z_g = a_g * oof[:, 0] + b_g
    a_c, b_c = platt(oof[:, 1]) if cnn else (0.0, 0.0)
    z_c = a_c * oof[:, 1] + b_c if cnn else np.zeros(len(y))
    best: tuple[float, float, float, float, float, list[dict[str, float]]] | None = None
    mix_curve = []
    for mix in MIXES if cnn else (0.0,):
        z = (1.0 - mix) * z_g + mix * z_c
        a_m, b_m = platt(z)
        p = 1.0 / (1.0 + np.exp(-(a_m * z + b_m)))
        th, curve = choose_threshold(p[keep], rfam[keep], clips[keep])
        worst = next(c["worst_ratio"] for c in curve if c["threshold"] == th)
        mix_curve.append({"mix": mix, "threshold": th, "worst_ratio": worst})
        if best is None or worst < best[2] - 1e-9:
            best = (mix, th, worst, a_m, b_m, curve)
    assert best is not None
    mix, threshold, _, a_m, b_m, curve = best
    a = a_m * (1.0 - mix) * a_g
    c_cnn = a_m * mix * a_c
    b = a_m * ((1.0 - mix) * b_g + mix * b_c) + b_m
    use_cnn = cnn and mix > 0.0
    p_oof = 1.0 / (1.0 + np.exp(-(a * oof[:, 0] + (c_cnn * oof[:, 1] if cnn else 0.0) + b)))

    clf = GradientBoostingClassifier(**params).fit(
        X[fit_rows], y[fit_rows], sample_weight=w[fit_rows]
    )
    tree_arrays = export_trees(clf, X[fit_rows])
    cnn_arrays = train_cnn(pics[fit_rows], y[fit_rows], w[fit_rows], seed) if use_cnn else {}

    # Confuser labeller: multinomial logistic regression on standardised features.
    Xf, lf = X[fit_rows], labels[fit_rows]
    mean = Xf.mean(axis=0)
    scale = Xf.std(axis=0) + 1e-9
    lab = LogisticRegression(max_iter=3000, C=0.5, class_weight="balanced")
    lab.fit((Xf - mean) / scale, lf)
    lcoef = np.zeros((len(LABELS), X.shape[1]))
    inter = np.full(len(LABELS), -50.0)
    for i, name in enumerate(lab.classes_):
        j = LABELS.index(str(name))
        lcoef[j] = lab.coef_[i]
        inter[j] = lab.intercept_[i]

    arrays: dict[str, np.ndarray] = {
        "feature_names": np.array(FEATURE_NAMES),
        **tree_arrays,
        "platt_a": np.array(a),
        "platt_b": np.array(b),
        "threshold": np.array(threshold),
        "label_names": np.array(LABELS),
        "label_coef": lcoef,
        "label_intercept": inter,
        "feat_mean": mean,
        "feat_scale": scale,
    }
    if use_cnn:
        arrays.update(cnn_arrays)
        arrays["cnn_coef"] = np.array(c_cnn)
        arrays["patch_shape"] = np.array([PATCH_BANDS, PATCH_FRAMES])
    per_family = {
        str(f): {
            "rows": int(np.count_nonzero(keep & (rfam == f))),
            "clips": len(set(clips[keep & (rfam == f)].tolist())),
            "oof_clips_flagged": round(
                clip_rate(p_oof[keep & (rfam == f)], clips[keep & (rfam == f)], threshold), 4
            ),
        }
        for f in sorted(set(rfam))
    }
    importances = sorted(
        zip(FEATURE_NAMES, clf.feature_importances_.round(4).tolist(), strict=True),
        key=lambda kv: -kv[1],
    )
    info = {
        "examples": int(np.count_nonzero(fit_rows)),
        "context_rows": int(np.count_nonzero(ctx)),
        "threshold": round(threshold, 3),
        "stack": {"trees": round(a, 4), "cnn": round(c_cnn, 4), "intercept": round(b, 4)},
        "cnn_mix": mix,
        "mix_curve": mix_curve,
        "oof_per_family": per_family,
        "feature_importance_top10": importances[:10],
        "clip_target": CLIP_TARGET,
        "oof_clip_curve": curve[::5],
        "gbt_params": params,
        "_oof": (p_oof, oof, keep),
    }
    return arrays, info


def train(
    data_dir: Path,
    train_fps: tuple[str, ...],
    seed: int,
    per_family: int,
    cache: Path | None = None,
    *,
    cnn: bool = True,
) -> tuple[PulseModel, dict[str, np.ndarray], dict[str, object]]:
    """Build the data set (or load it from ``cache``, an .npz written by an earlier run with
    the same arguments) and fit."""
    key = f"{DATA_VERSION}|{','.join(train_fps)}|{seed}|{per_family}|{','.join(FEATURE_NAMES)}"
    if cache is not None and cache.exists() and str(np.load(cache)["key"]) == key:
        z = np.load(cache)
        ex = Examples(
            list(z["X"]),
            z["family"].tolist(),
            z["group"].tolist(),
            z["clip"].tolist(),
            list(z["P"]),
        )
        info = json.loads(str(z["info"]))
    else:
        ex, info = build_dataset(data_dir, train_fps, seed, per_family)
        if cache is not None:
            X, fam, grp = ex.arrays()
            np.savez(
                cache,
                key=key,
                X=X,
                family=fam,
                group=grp,
                clip=ex.clips(),
                P=ex.patches(),
                info=json.dumps(info),
            )
    arrays, fit_info = fit(ex, seed, cnn=cnn)
    fit_info.pop("_oof")
    kind = "cnn" if "cnn_layers" in arrays else ""
    fps = "".join(f[2:] for f in train_fps)
    arrays["version"] = np.array(f"{VERSION_PREFIX}{kind}-{fps}-s{seed}")
    model = PulseModel.from_arrays(arrays)
    return model, arrays, {**info, **fit_info}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("src/shotwatch/classification/model"))
    ap.add_argument("--train-fps", default="FP1,FP2,FP3,FP4")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--per-family", type=int, default=500)
    ap.add_argument("--cache", type=Path, help="reuse the extracted features (.npz) across fits")
    ap.add_argument("--no-cnn", action="store_true", help="trees only (no PyTorch needed to train)")
    args = ap.parse_args(argv)
    if not args.no_cnn:
        try:
            import torch  # noqa: F401
        except ImportError:
            ap.error("training the network needs PyTorch (pip install torch==2.13.0) or --no-cnn")
    t0 = time.perf_counter()
    fps = tuple(s.strip() for s in args.train_fps.split(","))
    model, arrays, info = train(
        args.data, fps, args.seed, args.per_family, args.cache, cnn=not args.no_cnn
    )
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / MODEL_FILE, **arrays)  # type: ignore[arg-type]
    info["version"] = model.version
    info["train_seconds"] = round(time.perf_counter() - t0, 1)
    (args.out / "pulse-model.json").write_text(json.dumps(info, indent=2) + "\n")
    json.dump(info, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
