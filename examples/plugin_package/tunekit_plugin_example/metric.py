"""Balanced accuracy: the mean of per-class recalls, robust to imbalanced evaluation sets."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from tunekit import Metric


class BalancedAccuracy(Metric):
    """Mean recall over the classes present in the labels (scikit-learn's
    ``balanced_accuracy_score``); predictions are class scores (N, C) or ids (N,)."""

    higher_is_better = True

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._hits: Counter[int] = Counter()
        self._support: Counter[int] = Counter()

    def update(self, preds: Any, labels: Any) -> None:
        scores = np.asarray(preds)
        predicted = scores.argmax(axis=1) if scores.ndim == 2 else scores.astype(np.int64)
        truth = np.asarray(labels).astype(np.int64).reshape(-1)
        self._support.update(truth.tolist())
        self._hits.update(truth[predicted == truth].tolist())

    def compute(self) -> float:
        if not self._support:
            raise ValueError("balanced_accuracy has seen no samples")
        return float(np.mean([self._hits[c] / n for c, n in self._support.items()]))
