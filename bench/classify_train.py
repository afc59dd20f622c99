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

VERSION_PREFIX = "pulse-gbt"
LABELS = (GUNSHOT, "fireworks", "firecracker", "backfire", "door_slam", "knock", "impact", "other")
#: Share of the total training weight per source (positives and negatives each sum to 1).
POS_SHARE = {"real_gunshot": 0.6, "gunshot": 0.25, "gunshot_close": 0.15}
NEG_REAL_BACKGROUND_SHARE = 0.3
#: Out-of-fold false alarms allowed per negative source when choosing the threshold: half of
#: the issue's per-clip target (a clip holds a few events); 5 % where the issue sets none.
#: Real background gets the full 2 %: its "background" events include late hill echoes of the
#: shots (2-4 s after them) that no label marks, so its measured rate is pessimistic.
FA_BUDGET = {
    "real_background": 0.02,
    "fireworks": 0.05,
    "door_slam": 0.025,
    "knock": 0.025,
    "keys": 0.025,
    "drawer": 0.025,
    "speech": 0.01,
    "cough": 0.01,
    "laughter": 0.01,
    "office": 0.01,
}


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
    missed = real_gunshot_examples(recs, ex, rng, n_aug=2)
    pool = background_pool(recs)
    synthetic_examples(ex, rng, pool, per_family, "train")
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


def fit(ex: Examples, seed: int) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    X, fam, groups = ex.arrays()
    labels = np.array([family_label(f) for f in fam])
    y = (labels == GUNSHOT).astype(int)
    w = sample_weights(fam)
    params = dict(
        n_estimators=250, max_depth=3, learning_rate=0.08, subsample=0.8, random_state=seed
    )

    # Out-of-fold raw scores for Platt calibration and for choosing the threshold.
    # Folds keep each real firing position whole (leave one position out), so the threshold
    # is chosen on positions the fold's model did not see; synthetic rows are spread at random.
    fps = sorted({g for g in groups if g.startswith("FP")})
    fold_rng = np.random.default_rng(seed)
    fold = np.array([fps.index(g) % 4 if g in fps else int(fold_rng.integers(4)) for g in groups])
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

    # Threshold: the lowest calibrated probability (never below 0.5, equal odds) at which the
    # out-of-fold false-alarm rate of every negative source is within half of the issue's
    # target for it (FA_BUDGET): chosen on the training positions only.
    neg_fams = sorted({f for f in fam if family_label(f) != GUNSHOT})
    threshold = 0.99
    curve = []
    for th in np.linspace(0.5, 0.99, 50):
        fa = {f: float(np.mean(p_oof[fam == f] >= th)) for f in neg_fams}
        rec = float(np.mean(p_oof[fam == "real_gunshot"] >= th))
        curve.append(
            {
                "threshold": round(float(th), 3),
                "real_recall": round(rec, 4),
                **{f: round(v, 4) for f, v in fa.items() if v > 0},
            }
        )
        if threshold == 0.99 and all(v <= FA_BUDGET.get(f, 0.05) for f, v in fa.items()):
            threshold = float(th)
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
            "oof_flagged": round(float(np.mean(p_oof[fam == f] >= threshold)), 4),
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
        "oof_curve": curve[::5],
        "gbt_params": params,
    }
    return arrays, info


def train(
    data_dir: Path, train_fps: tuple[str, ...], seed: int, per_family: int
) -> tuple[PulseModel, dict[str, np.ndarray], dict[str, object]]:
    ex, info = build_dataset(data_dir, train_fps, seed, per_family)
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
    ap.add_argument("--per-family", type=int, default=300)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    fps = tuple(s.strip() for s in args.train_fps.split(","))
    model, arrays, info = train(args.data, fps, args.seed, args.per_family)
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
