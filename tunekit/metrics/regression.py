"""Error metrics for regression-style outputs: MSE, RMSE, MAE (lower is better).

Streaming keeps the sum of errors and the count of values, so batching does not change the
result. Every output element counts once: for ``(N, D)`` outputs this is scikit-learn's
``multioutput="uniform_average"``, since each column has N values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tunekit.errors import DataError
from tunekit.metric import Metric
from tunekit.metrics._labels import NO_LABELS


class _MeanError(Metric):
    higher_is_better = False

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sum = 0.0
        self._count = 0

    def update(self, preds: Any, labels: Any) -> None:
        if labels is None:
            raise DataError(NO_LABELS)
        predicted = np.asarray(preds, dtype=np.float64)
        target = np.asarray(labels, dtype=np.float64)
        if predicted.shape != target.shape:
            if predicted.size != target.size:
                raise DataError(f"{type(self).__name__.lower()}: predictions {predicted.shape} "
                                f"and labels {target.shape} differ in size")
            target = target.reshape(predicted.shape)  # (N,) labels against (N, 1) outputs
        self._sum += float(self._errors(predicted - target).sum())
        self._count += predicted.size

    @staticmethod
    def _errors(diff: np.ndarray) -> np.ndarray:
        return diff * diff

    def _mean(self) -> float:
        if self._count == 0:
            raise DataError(f"{type(self).__name__.lower()} has seen no values")
        return self._sum / self._count


class MSE(_MeanError):
    """Mean squared error over every output element."""

    def compute(self) -> float:
        return self._mean()


class RMSE(_MeanError):
    """Root mean squared error: the MSE's square root, in the unit of the outputs."""

    def compute(self) -> float:
        return math.sqrt(self._mean())


class MAE(_MeanError):
    """Mean absolute error over every output element."""

    _errors = staticmethod(np.abs)

    def compute(self) -> float:
        return self._mean()
