"""Dataloaders of ``(images, labels)`` batches for the example's configs.

``calib_loader_half`` is the fallback case: the same calibration images at half intensity, as a
preprocessing mismatch would give. Ranges observed on them are half the real ones, so default
int8 clips the input of ``conv1`` and loses about 20 points of accuracy until ``conv1`` runs in
float again.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from model import digits_data


def _loader(images: np.ndarray, labels: np.ndarray, batch_size: int) -> DataLoader:
    dataset = TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


def calib_loader() -> DataLoader:
    """The 100 calibration images (from the training part), 10 per batch."""
    data = digits_data()
    return _loader(data.x_calib, data.y_calib, 10)


def calib_loader_half() -> DataLoader:
    """The calibration images scaled by 0.5: a calibration set that misrepresents the inputs."""
    data = digits_data()
    return _loader((data.x_calib * 0.5).astype(np.float32), data.y_calib, 10)


def eval_loader() -> DataLoader:
    """The 597 held-out images, 64 per batch (the batch size the latency objective times)."""
    data = digits_data()
    return _loader(data.x_eval, data.y_eval, 64)
