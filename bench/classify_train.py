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

from bench.classify_data import (
    Examples,
    background_pool,
    load_pittsburgh,
    real_gunshot_examples,
    synthetic_examples,
)
from shotwatch.classification.features import FEATURE_NAMES
from shotwatch.classification.model import GUNSHOT, MODEL_FILE, PulseModel
from shotwatch.classification.synth import FAMILY_LABEL

VERSION_PREFIX = "pulse-gbt2"
LABELS = (GUNSHOT, "fireworks", "firecracker", "backfire", "door_slam", "knock", "impact", "other")
#: Share of the total training weight per source (positives and negatives each sum to 1).
POS_SHARE = {"real_gunshot": 0.6, "gunshot": 0.25, "gunshot_close": 0.15}
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


def family_label(family: str) -> str:
    if family == "real_gunshot":
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


def fit(ex: Examples, seed: int) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    X, fam, groups = ex.arrays()
    clips = ex.clips()
    labels = np.array([family_label(f) for f in fam])
    y = (labels == GUNSHOT).astype(int)
    w = sample_weights(fam)
    params = dict(
        n_estimators=250, max_depth=3, learning_rate=0.08, subsample=0.8, random_state=seed
    )

    # Out-of-fold raw scores for Platt calibration and for choosing the threshold.
    # Folds keep each real firing position whole (leave one position out), so the threshold
    # is chosen on positions the fold's model did not see; synthetic rows are spread at random.
    # Synthetic clips go to a random fold whole (their impulses share one source).
    fps = sorted({g for g in groups if g.startswith("FP")})
    fold_rng = np.random.default_rng(seed)
    clip_fold = {c: int(fold_rng.integers(4)) for c in sorted(set(clips.tolist()))}
    fold = np.array(
        [fps.index(g) % 4 if g in fps else clip_fold[c] for g, c in zip(groups, clips, strict=True)]
    )
    oof = np.zeros(len(y))
    for k in range(4):
        tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        m = GradientBoostingClassifier(**params).fit(X[tr], y[tr], sample_weight=w[tr])
        oof[te] = m.decision_function(X[te])
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof[:, None], y, sample_weight=w)
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    p_oof = 1.0 / (1.0 + np.exp(-(a * oof + b)))

    clf = GradientBoostingClassifier(**params).fit(X, y, sample_weight=w)
    tree_arrays = export_trees(clf, X)

    # Confuser labeller: multinomial logistic regression on standardised features.
    mean = X.mean(axis=0)
    scale = X.std(axis=0) + 1e-9
    lab = LogisticRegression(max_iter=3000, C=0.5, class_weight="balanced")
    lab.fit((X - mean) / scale, labels)
    coef = np.zeros((len(LABELS), X.shape[1]))
    inter = np.full(len(LABELS), -50.0)
    for i, name in enumerate(lab.classes_):
        j = LABELS.index(str(name))
        coef[j] = lab.coef_[i]
        inter[j] = lab.intercept_[i]

    # Threshold: chosen on out-of-fold scores of the training positions only.
    threshold, curve = choose_threshold(p_oof, fam, clips)
    arrays: dict[str, np.ndarray] = {
        "feature_names": np.array(FEATURE_NAMES),
        **tree_arrays,
        "platt_a": np.array(a),
        "platt_b": np.array(b),
        "threshold": np.array(threshold),
        "label_names": np.array(LABELS),
        "label_coef": coef,
        "label_intercept": inter,
        "feat_mean": mean,
        "feat_scale": scale,
    }
    per_family = {
        str(f): {
            "n": int(np.count_nonzero(fam == f)),
            "oof_clips_flagged": round(clip_rate(p_oof[fam == f], clips[fam == f], threshold), 4),
        }
        for f in sorted(set(fam))
    }
    importances = sorted(
        zip(FEATURE_NAMES, clf.feature_importances_.round(4).tolist(), strict=True),
        key=lambda kv: -kv[1],
    )
    info = {
        "examples": len(y),
        "threshold": round(threshold, 3),
        "platt": [round(a, 4), round(b, 4)],
        "oof_per_family": per_family,
        "feature_importance_top10": importances[:10],
        "clip_target": CLIP_TARGET,
        "oof_clip_curve": curve[::5],
        "gbt_params": params,
    }
    return arrays, info


def train(
    data_dir: Path,
    train_fps: tuple[str, ...],
    seed: int,
    per_family: int,
    cache: Path | None = None,
) -> tuple[PulseModel, dict[str, np.ndarray], dict[str, object]]:
    """Build the data set (or load it from ``cache``, an .npz written by an earlier run with
    the same arguments) and fit."""
    key = f"{','.join(train_fps)}|{seed}|{per_family}|{','.join(FEATURE_NAMES)}"
    if cache is not None and cache.exists() and str(np.load(cache)["key"]) == key:
        z = np.load(cache)
        ex = Examples(list(z["X"]), z["family"].tolist(), z["group"].tolist(), z["clip"].tolist())
        info = json.loads(str(z["info"]))
    else:
        ex, info = build_dataset(data_dir, train_fps, seed, per_family)
        if cache is not None:
            X, fam, grp = ex.arrays()
            np.savez(
                cache, key=key, X=X, family=fam, group=grp, clip=ex.clips(), info=json.dumps(info)
            )
    arrays, fit_info = fit(ex, seed)
    arrays["version"] = np.array(f"{VERSION_PREFIX}-{''.join(f[2:] for f in train_fps)}-s{seed}")
    model = PulseModel.from_arrays(arrays)
    return model, arrays, {**info, **fit_info}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("src/shotwatch/classification/model"))
    ap.add_argument("--train-fps", default="FP1,FP2,FP3,FP4")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--per-family", type=int, default=150)
    ap.add_argument("--cache", type=Path, help="reuse the extracted features (.npz) across fits")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    fps = tuple(s.strip() for s in args.train_fps.split(","))
    model, arrays, info = train(args.data, fps, args.seed, args.per_family, args.cache)
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
