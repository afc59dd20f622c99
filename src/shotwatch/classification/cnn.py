"""A small convolutional network over an impulse's time-frequency picture, in numpy.

Trained offline (``bench/classify_cnn.py``, PyTorch, training only) and shipped as plain
arrays in the model file; this module is the whole run-time side. The layout:

    picture (1 x bands x frames)
    -> [conv 3x3 (same padding) -> ReLU -> max-pool 2x2] for each but the last conv layer
    -> conv 3x3 -> ReLU
    -> per channel and band: max and mean over time (the picture's frequency axis is kept:
       *where* in frequency the energy sits matters, *when* within the window less so)
    -> linear -> one logit (log-odds of gunfire)

Arrays: ``cnn_w{i}`` (out, in, 3, 3), ``cnn_b{i}`` (out,), ``cnn_fc_w`` (features,),
``cnn_fc_b`` (scalar), ``cnn_layers`` (number of conv layers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class ConvNet:
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    fc_w: np.ndarray
    fc_b: float

    @staticmethod
    def from_arrays(data: dict[str, np.ndarray]) -> ConvNet:
        n = int(data["cnn_layers"])
        return ConvNet(
            weights=tuple(np.asarray(data[f"cnn_w{i}"], dtype=np.float32) for i in range(n)),
            biases=tuple(np.asarray(data[f"cnn_b{i}"], dtype=np.float32) for i in range(n)),
            fc_w=np.asarray(data["cnn_fc_w"], dtype=np.float32),
            fc_b=float(data["cnn_fc_b"]),
        )

    def logit(self, pictures: np.ndarray) -> np.ndarray:
        """Log-odds of gunfire for a batch of pictures (n, bands, frames)."""
        h = np.asarray(pictures, dtype=np.float32)[:, None, :, :]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = np.maximum(conv3x3(h, w, b), 0.0)
            if i < last:
                h = maxpool2(h)
        pooled = np.concatenate([h.max(axis=3), h.mean(axis=3)], axis=1)
        return np.asarray(pooled.reshape(len(h), -1) @ self.fc_w + self.fc_b, dtype=np.float64)


def conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2-D cross-correlation with a 3x3 kernel and zero 'same' padding, as torch's Conv2d.

    ``x`` (n, in, h, w), ``w`` (out, in, 3, 3), ``b`` (out,) -> (n, out, h, w)."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))  # (n, in, h, w, 3, 3)
    out = np.einsum("nihwkl,oikl->nohw", win, w, optimize=True)
    return np.asarray(out + b[None, :, None, None], dtype=np.float32)


def maxpool2(x: np.ndarray) -> np.ndarray:
    """2x2 max-pooling with stride 2 (odd trailing rows/columns dropped, as torch)."""
    n, c, h, w = x.shape
    x = x[:, :, : h // 2 * 2, : w // 2 * 2]
    return np.asarray(x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5)))
