"""Train the convolutional half of the pulse model (PyTorch, training only).

The product never imports this: the trained weights are exported as plain arrays and run by
:mod:`shotwatch.classification.cnn` with numpy. PyTorch is needed only to retrain
(``pip install torch==2.13.0``, CPU build). Training is deterministic for a given seed on one
thread (``torch.use_deterministic_algorithms``).
"""

from __future__ import annotations

import numpy as np

#: Channels of the conv layers; each but the last is followed by 2x2 max-pooling.
CHANNELS = (8, 16, 32)
EPOCHS = 10
BATCH = 256
LR = 3e-3
WEIGHT_DECAY = 1e-4
DROPOUT = 0.2
#: Training-time jitter of the onset, in picture frames (4 ms each), either way.
SHIFT_FRAMES = 2


def _net(torch: object, n_bands: int) -> object:
    nn = torch.nn  # type: ignore[attr-defined]

    class Net(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            convs, c_in = [], 1
            for c in CHANNELS:
                convs.append(nn.Conv2d(c_in, c, 3, padding=1))
                c_in = c
            self.convs = nn.ModuleList(convs)
            bands = n_bands // 2 ** (len(CHANNELS) - 1)
            self.drop = nn.Dropout(DROPOUT)
            self.fc = nn.Linear(2 * CHANNELS[-1] * bands, 1)

        def forward(self, x: object) -> object:
            f = torch.nn.functional  # type: ignore[attr-defined]
            h = x[:, None]  # type: ignore[index]
            for i, conv in enumerate(self.convs):
                h = f.relu(conv(h))
                if i < len(self.convs) - 1:
                    h = f.max_pool2d(h, 2)
            pooled = torch.cat([h.amax(dim=3), h.mean(dim=3)], dim=1)  # type: ignore[attr-defined]
            return self.fc(self.drop(pooled.flatten(1)))[:, 0]

    return Net()


def train_cnn(
    pictures: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """Fit on (n, bands, frames) pictures, labels 0/1 and sample weights; return the arrays
    :class:`shotwatch.classification.cnn.ConvNet` evaluates."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(seed)
    net = _net(torch, pictures.shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)  # type: ignore[attr-defined]
    n = len(y)
    steps = EPOCHS * ((n + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    xs = torch.from_numpy(pictures.astype(np.float32))
    ys = torch.from_numpy(y.astype(np.float32))
    ws = torch.from_numpy((w / w.mean()).astype(np.float32))
    net.train()  # type: ignore[attr-defined]
    for _ in range(EPOCHS):
        order = rng.permutation(n)
        for a in range(0, n, BATCH):
            idx = order[a : a + BATCH]
            xb = xs[idx]
            shift = int(rng.integers(-SHIFT_FRAMES, SHIFT_FRAMES + 1))
            if shift:
                xb = torch.roll(xb, shift, dims=2)
            logit = net(xb)  # type: ignore[operator]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logit, ys[idx], weight=ws[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()  # type: ignore[attr-defined]
    out: dict[str, np.ndarray] = {"cnn_layers": np.array(len(CHANNELS))}
    for i, conv in enumerate(net.convs):  # type: ignore[attr-defined]
        out[f"cnn_w{i}"] = conv.weight.detach().numpy().astype(np.float32)
        out[f"cnn_b{i}"] = conv.bias.detach().numpy().astype(np.float32)
    # torch flattens (channels, bands) of [max; mean] in that order, as the numpy side does.
    out["cnn_fc_w"] = net.fc.weight.detach().numpy()[0].astype(np.float32)  # type: ignore[attr-defined]
    out["cnn_fc_b"] = np.array(float(net.fc.bias.detach().numpy()[0]))  # type: ignore[attr-defined]
    return out
