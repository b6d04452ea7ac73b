"""The digits CNN of the bundled example, its data split, and a factory that trains it once.

Architecture, split and training follow the peer workload R1 (``shared/peers/refwork.py``) exactly,
so the model tunekit tunes here is the one Intel Neural Compressor tunes in the benchmark, down
to the weights: same seeds, same parameter creation order, same batches.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SEED = 0
N_TRAIN = 1200
N_CALIB = 100
CACHE_FILE = "digits_cnn.pt"


@dataclass(frozen=True)
class DigitsSplit:
    """NCHW float32 images in [0, 1] at 16×16 and int64 labels, for each part of the split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_calib: np.ndarray
    y_calib: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


@functools.lru_cache(maxsize=1)
def digits_data() -> DigitsSplit:
    """scikit-learn's bundled 8×8 digits, scaled to [0, 1] and upsampled bilinearly to 16×16.

    A fixed permutation (seed 0) gives 1,200 training and 597 evaluation images; the 100
    calibration images are drawn (seed 1) from the training part, as a user would calibrate on
    data the model has seen but never on the evaluation set.
    """
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images.astype(np.float32) / 16.0
    images = np.stack([zoom(image, 2, order=1) for image in small]).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    order = np.random.RandomState(SEED).permutation(len(labels))
    train, held_out = order[:N_TRAIN], order[N_TRAIN:]
    calib = np.random.RandomState(SEED + 1).choice(N_TRAIN, N_CALIB, replace=False)
    return DigitsSplit(x_train=images[train], y_train=labels[train],
                       x_calib=images[train][calib], y_calib=labels[train][calib],
                       x_eval=images[held_out], y_eval=labels[held_out])


class DigitsCNN(nn.Module):
    """Three conv-BN-ReLU blocks (16, 32, 64 channels; 2×2 max-pool after the last two) and two
    fully connected layers. Every op has its own named module so per-op precision choices read
    as ``conv1 → fp32`` in reports, the same names the peer reports."""

    def __init__(self) -> None:
        super().__init__()
        # creation order fixes the random initialisation: keep it as in the peer workload
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.bn3 = nn.BatchNorm2d(64)
        self.relu3 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))                 # 16 × 16×16
        x = self.pool1(self.relu2(self.bn2(self.conv2(x))))     # 32 × 8×8
        x = self.pool2(self.relu3(self.bn3(self.conv3(x))))     # 64 × 4×4
        return self.fc2(self.relu4(self.fc1(self.flatten(x))))  # 10 logits


def train(epochs: int = 15, batch_size: int = 64, lr: float = 1e-3) -> DigitsCNN:
    """Adam on cross-entropy, a fresh shuffle per epoch from a generator seeded with 0.

    The global torch RNG is seeded for the initialisation inside ``fork_rng``, so calling the
    factory does not change the random state of the program that calls it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = DigitsCNN()
    return fit(model, epochs, batch_size, lr).eval()


def fit(model: nn.Module, epochs: int, batch_size: int, lr: float) -> nn.Module:
    """The training loop shared by the FP32 training and the QAT fine-tune (``qat_train.py``):
    Adam on cross-entropy over the 1,200 training images, shuffled by a generator seeded with 0.
    Leaves ``model`` in training mode."""
    data = digits_data()
    images, labels = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=shuffle)
        for start in range(0, len(labels), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    return model


def cache_path() -> Path:
    """``$TUNEKIT_CACHE_DIR/digits_cnn.pt``, else ``artifacts/`` beside this file (git-ignored)."""
    folder = os.environ.get("TUNEKIT_CACHE_DIR") or Path(__file__).resolve().parent / "artifacts"
    return Path(folder) / CACHE_FILE


def load_model() -> DigitsCNN:
    """The trained FP32 model in eval mode; trains (about 10 s) and caches it on first use."""
    path = cache_path()
    if path.exists():
        model = DigitsCNN()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    started = time.perf_counter()
    model = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    # written aside then renamed, so a concurrent run never reads half a file
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(model.state_dict(), partial)
    os.replace(partial, path)
    print(f"trained the digits CNN in {time.perf_counter() - started:.1f} s; cached at {path}")
    return model
