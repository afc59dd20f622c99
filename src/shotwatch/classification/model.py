"""The shipped pulse model: gradient-boosted trees and a small convolutional network, stacked
and calibrated, plus a confuser labeller.

The model is a plain ``.npz`` of numeric arrays (no pickle, no code) inside the package,
evaluated here with numpy alone, so it loads offline and cannot execute anything on load:

- ``feature_names``: must equal :data:`shotwatch.classification.features.FEATURE_NAMES`;
- trees: ``node_left``, ``node_right``, ``node_feature``, ``node_threshold``, ``node_value``
  (all trees' nodes concatenated) and ``tree_root`` (index of each tree's first node);
  ``init_score`` and ``learning_rate``: raw log-odds = init + lr * sum(leaf values);
- optionally a convolutional network over the impulse's time-frequency picture
  (:mod:`shotwatch.classification.cnn`: ``cnn_layers``, ``cnn_w*``, ``cnn_b*``, ``cnn_fc_*``,
  ``patch_shape``) and its stacking weight ``cnn_coef``;
- ``platt_a``, ``platt_b``: P(gunfire) = 1 / (1 + exp(-(a * raw + cnn_coef * cnn + b)))
  (the stacking logistic regression, fitted on out-of-fold scores; ``cnn`` is the network's
  log-odds, absent and 0 for a trees-only model);
- ``threshold``: the probability at and above which a pulse is called gunfire;
- ``label_names``, ``label_coef``, ``label_intercept``, ``feat_mean``, ``feat_scale``:
  a multinomial logistic model over the labels, used to name the likely confuser;
- ``version``: the model's version string (stored with every decision).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from shotwatch.classification.cnn import ConvNet
from shotwatch.classification.features import FEATURE_NAMES
from shotwatch.classification.patch import PATCH_BANDS, PATCH_FRAMES
from shotwatch.core.errors import InputError

MODEL_FILE = "pulse-model.npz"
GUNSHOT = "gunshot"
#: Labels a non-gunfire decision can carry (the issue's confuser classes).
CONFUSER_LABELS = (
    "fireworks",
    "firecracker",
    "backfire",
    "door_slam",
    "knock",
    "impact",
    "other",
)


@dataclass(frozen=True)
class PulseModel:
    version: str
    feature_names: tuple[str, ...]
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold_node: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    init_score: float
    learning_rate: float
    platt_a: float
    platt_b: float
    threshold: float
    label_names: tuple[str, ...]
    label_coef: np.ndarray
    label_intercept: np.ndarray
    feat_mean: np.ndarray
    feat_scale: np.ndarray
    cnn: ConvNet | None = None
    cnn_coef: float = 0.0

    @property
    def needs_pictures(self) -> bool:
        """Whether scoring needs each impulse's picture (:mod:`.patch`) besides its features."""
        return self.cnn is not None

    @staticmethod
    def load(path: str | Path) -> PulseModel:
        where = str(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise InputError(where, "model", f"cannot read model file: {exc}") from exc
        return PulseModel.from_arrays(data, where)

    @staticmethod
    def from_arrays(data: dict[str, np.ndarray], where: str = "model") -> PulseModel:
        required = (
            "version",
            "feature_names",
            "node_left",
            "node_right",
            "node_feature",
            "node_threshold",
            "node_value",
            "tree_root",
            "init_score",
            "learning_rate",
            "platt_a",
            "platt_b",
            "threshold",
            "label_names",
            "label_coef",
            "label_intercept",
            "feat_mean",
            "feat_scale",
        )
        for key in required:
            if key not in data:
                raise InputError(where, key, "missing from the model file")
        names = tuple(str(s) for s in data["feature_names"])
        if names != FEATURE_NAMES:
            raise InputError(
                where, "feature_names", "model was trained on different features than this code"
            )
        cnn = None
        if "cnn_layers" in data:
            shape = tuple(int(v) for v in data.get("patch_shape", np.zeros(0)))
            if shape != (PATCH_BANDS, PATCH_FRAMES):
                raise InputError(
                    where, "patch_shape", "network was trained on other pictures than this code's"
                )
            try:
                cnn = ConvNet.from_arrays(data)
            except KeyError as exc:
                raise InputError(where, str(exc.args[0]), "missing from the model file") from exc
            if "cnn_coef" not in data:
                raise InputError(where, "cnn_coef", "missing from the model file")
        return PulseModel(
            version=str(data["version"]),
            feature_names=names,
            left=data["node_left"].astype(np.int64),
            right=data["node_right"].astype(np.int64),
            feature=data["node_feature"].astype(np.int64),
            threshold_node=data["node_threshold"].astype(np.float64),
            value=data["node_value"].astype(np.float64),
            roots=data["tree_root"].astype(np.int64),
            init_score=float(data["init_score"]),
            learning_rate=float(data["learning_rate"]),
            platt_a=float(data["platt_a"]),
            platt_b=float(data["platt_b"]),
            threshold=float(data["threshold"]),
            label_names=tuple(str(s) for s in data["label_names"]),
            label_coef=data["label_coef"].astype(np.float64),
            label_intercept=data["label_intercept"].astype(np.float64),
            feat_mean=data["feat_mean"].astype(np.float64),
            feat_scale=data["feat_scale"].astype(np.float64),
            cnn=cnn,
            cnn_coef=float(data["cnn_coef"]) if cnn is not None else 0.0,
        )

    def raw_score(self, features: np.ndarray) -> np.ndarray:
        """Uncalibrated log-odds of gunfire, one per row of ``features``.

        All trees are walked at once (one step of every tree per loop turn, so the loop runs
        tree-depth times, not trees x depth); leaf values are then summed tree by tree in
        order (``cumsum``), exactly as a one-tree-at-a-time walk adds them."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        n_rows = x.shape[0]
        if n_rows == 0 or len(self.roots) == 0:
            return np.full(n_rows, self.init_score)
        rows = np.arange(n_rows)[:, None]
        node = np.broadcast_to(self.roots, (n_rows, len(self.roots))).copy()
        while True:
            leaf = self.left[node] < 0
            if leaf.all():
                break
            f = np.where(leaf, 0, self.feature[node])
            go_left = x[rows, f] <= self.threshold_node[node]
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(leaf, node, nxt)
        total = np.cumsum(self.value[node], axis=1)[:, -1]
        return self.init_score + self.learning_rate * total

    def cnn_score(self, pictures: np.ndarray | None, n_rows: int) -> np.ndarray:
        """The network's log-odds per row (zeros for a trees-only model)."""
        if self.cnn is None:
            return np.zeros(n_rows)
        if pictures is None:
            raise InputError("model", "pictures", "this model also needs each impulse's picture")
        pics = np.asarray(pictures)
        if pics.shape != (n_rows, PATCH_BANDS, PATCH_FRAMES):
            raise InputError("model", "pictures", f"expected {n_rows} pictures, got {pics.shape}")
        return self.cnn.logit(pics) if n_rows else np.zeros(0)

    def calibrate(self, raw: np.ndarray, cnn: np.ndarray | None = None) -> np.ndarray:
        """Stacked, calibrated P(gunfire) from the trees' raw log-odds (:meth:`raw_score`)
        and the network's (:meth:`cnn_score`; ignored by a trees-only model)."""
        z = self.platt_a * np.asarray(raw, dtype=np.float64) + self.platt_b
        if self.cnn is not None and cnn is not None:
            z = z + self.cnn_coef * np.asarray(cnn, dtype=np.float64)
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))

    def probability(self, features: np.ndarray, pictures: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probability of gunfire in [0, 1], one per row; a model with a network
        needs the rows' ``pictures`` too."""
        raw = self.raw_score(features)
        return self.calibrate(raw, self.cnn_score(pictures, len(raw)))

    def label_probabilities(self, features: np.ndarray) -> np.ndarray:
        """Per-row probabilities over ``label_names`` (multinomial logistic model)."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        z = ((x - self.feat_mean) / self.feat_scale) @ self.label_coef.T + self.label_intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def likely_confuser(self, features: np.ndarray) -> list[str]:
        """The most probable non-gunfire label per row."""
        p = self.label_probabilities(features)
        mask = np.array([name != GUNSHOT for name in self.label_names])
        p = np.where(mask[None, :], p, -1.0)
        return [self.label_names[i] for i in np.argmax(p, axis=1)]


def packaged_model_path() -> Path:
    return Path(str(resources.files("shotwatch.classification") / "model" / MODEL_FILE))


@lru_cache(maxsize=1)
def default_model() -> PulseModel:
    """The model shipped inside the package (read once, from the package's own files)."""
    return PulseModel.load(packaged_model_path())
