"""Workload "resnet-digits": a ResNet-like CNN on the digits upsampled to 32×32, the larger
op-wise fallback case of ``benchmarks/vs_inc.py``.

Importable by tunekit's environment and by the INC peer's (torch, numpy, scipy, scikit-learn
only). The data split is R1's (``examples/digits_pytorch``: 1,200 train, 100 calibration drawn
from train, 597 eval); images are upsampled 8×8 → 32×32 and replicated to 3 channels. The model
(stem conv + three stages of two BasicBlocks, 32/64/128 channels, ~0.7 M parameters) trains
for a few epochs with fixed seeds; its weights are cached in ``$TUNEKIT_BENCH_CACHE`` (default
``~/.cache/tunekit-bench``) so every tool tunes the same weights. Calibrating on images at half
intensity clips the int8 input quantizer the way R1's fallback case does.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from resnet_blocks import BasicBlock
from torch import nn
from torch.nn import functional as F

SEED = 0
EPOCHS = 4
CACHE = Path(os.environ.get("TUNEKIT_BENCH_CACHE") or Path.home() / ".cache" / "tunekit-bench")
WEIGHTS = CACHE / f"resnet_digits_e{EPOCHS}.pt"


@functools.lru_cache(maxsize=1)
def digits32() -> dict[str, np.ndarray]:
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images.astype(np.float32) / 16.0
    images = np.stack([zoom(im, 4, order=1) for im in small]).astype(np.float32)[:, None]
    images = np.repeat(images, 3, axis=1)
    labels = digits.target.astype(np.int64)
    order = np.random.RandomState(SEED).permutation(len(labels))
    train, held_out = order[:1200], order[1200:]
    calib = np.random.RandomState(SEED + 1).choice(1200, 100, replace=False)
    return {"x_train": images[train], "y_train": labels[train],
            "x_calib": images[train][calib], "y_calib": labels[train][calib],
            "x_eval": images[held_out], "y_eval": labels[held_out]}


class ResNetDigits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(BasicBlock(32, 32, 1), BasicBlock(32, 32, 1))
        self.layer2 = nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64, 1))
        self.layer3 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))


def train() -> ResNetDigits:
    torch.manual_seed(SEED)
    data = digits32()
    model = ResNetDigits()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def load_model() -> ResNetDigits:
    """The trained model (eval mode), trained once and cached."""
    model = ResNetDigits()
    if WEIGHTS.exists():
        model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
        return model.eval()
    model = train()
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    partial = WEIGHTS.with_suffix(f".{os.getpid()}.tmp")
    torch.save(model.state_dict(), partial)
    os.replace(partial, WEIGHTS)
    return model


def _batches(x: np.ndarray, y: np.ndarray, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    return [(xt[i:i + size], yt[i:i + size]) for i in range(0, len(yt), size)]


def calib_loader_half() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The 100 calibration images at half intensity (the fallback case), batches of 10."""
    data = digits32()
    return _batches(data["x_calib"] * np.float32(0.5), data["y_calib"], 10)


def eval_loader() -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = digits32()
    return _batches(data["x_eval"], data["y_eval"], 100)


def top1(model: nn.Module) -> float:
    data = digits32()
    with torch.inference_mode():
        out = model(torch.from_numpy(data["x_eval"]))
    return float((out.argmax(1) == torch.from_numpy(data["y_eval"])).float().mean())


def timed_batch() -> torch.Tensor:
    """The batch both tools' models are timed on: 32 held-out images."""
    return torch.from_numpy(digits32()["x_eval"][:32])
