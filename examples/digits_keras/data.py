"""Batches of ``(images, labels)`` numpy arrays for the example's configs.

``calib_loader_half`` is the fallback case: the calibration images at half intensity, as a
preprocessing mismatch would give. Default int8 then clips the model input's quantizer and loses
about 14 points of top-1 until ``conv1`` (and with it the input) runs in float again.
"""

from __future__ import annotations

import numpy as np

from model import digits_data

Batches = list[tuple[np.ndarray, np.ndarray]]


def _batches(images: np.ndarray, labels: np.ndarray, batch_size: int) -> Batches:
    return [(images[i:i + batch_size], labels[i:i + batch_size])
            for i in range(0, len(labels), batch_size)]


def calib_loader() -> Batches:
    """The 100 calibration images (from the training part), 10 per batch."""
    data = digits_data()
    return _batches(data.x_calib, data.y_calib, 10)


def calib_loader_half() -> Batches:
    """The calibration images scaled by 0.5: a calibration set that misrepresents the inputs."""
    data = digits_data()
    return _batches((data.x_calib * 0.5).astype(np.float32), data.y_calib, 10)


def eval_loader() -> Batches:
    """The 597 held-out images, 32 per batch (the batch size the latency objective times)."""
    data = digits_data()
    return _batches(data.x_eval, data.y_eval, 32)
