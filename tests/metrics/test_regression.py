"""MSE, RMSE and MAE against scikit-learn on randomised outputs (fixed seeds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error

from tunekit.errors import DataError
from tunekit.metrics.regression import MAE, MSE, RMSE
from tunekit.testing.metric_contract import MetricContract


def outputs(seed: int, columns: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(70, columns))
    predicted = target + rng.normal(scale=0.3, size=target.shape)
    return [(predicted[i:i + 16], target[i:i + 16]) for i in range(0, 70, 16)]


class _RegressionContract(MetricContract):
    def make_batches(self, seed: int) -> list[tuple[Any, Any]]:
        return outputs(seed)


class TestMSE(_RegressionContract):
    def make_metric(self) -> MSE:
        return MSE()

    def reference(self, preds: Any, labels: Any) -> float:
        return mean_squared_error(labels, preds)


class TestRMSE(_RegressionContract):
    def make_metric(self) -> RMSE:
        return RMSE()

    def reference(self, preds: Any, labels: Any) -> float:
        return float(np.sqrt(mean_squared_error(labels, preds)))


class TestMAE(_RegressionContract):
    def make_metric(self) -> MAE:
        return MAE()

    def reference(self, preds: Any, labels: Any) -> float:
        return mean_absolute_error(labels, preds)


def test_lower_is_better_and_column_outputs_take_flat_labels():
    assert not MSE.higher_is_better and not RMSE.higher_is_better and not MAE.higher_is_better
    metric = MAE()
    metric.update(np.array([[1.0], [2.0]]), np.array([1.5, 2.0]))
    assert metric.compute() == pytest.approx(0.25)
    with pytest.raises(DataError, match="differ in size"):
        metric.update(np.zeros((2, 2)), np.zeros(3))
    with pytest.raises(DataError, match="no values"):
        MSE().compute()
