"""F1, accuracy and top-k against scikit-learn / numpy on randomised data (fixed seeds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from tunekit.errors import DataError
from tunekit.metrics.accuracy import Accuracy
from tunekit.metrics.f1 import F1
from tunekit.metrics.topk import TopK
from tunekit.testing.metric_contract import MetricContract


def scores_and_labels(seed: int, classes: int, n: int = 200, batch: int = 32
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Logits that agree with the labels ~60% of the time, cut into ragged batches; a class may
    be missing from the labels or from the predictions, as in real small evaluation sets."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += rng.normal(1.0, 1.0, size=n)
    if classes > 2:
        labels[labels == classes - 1] = 0          # last class: predicted, never true
    return [(logits[i:i + batch], labels[i:i + batch]) for i in range(0, n, batch)]


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
@pytest.mark.parametrize("seed", range(4))
def test_multiclass_f1_equals_sklearn(average, seed):
    batches = scores_and_labels(seed, classes=5)
    metric = F1(average=average)
    for preds, labels in batches:
        metric.update(preds, labels)
    y_pred = np.concatenate([p.argmax(1) for p, _ in batches])
    y_true = np.concatenate([t for _, t in batches])
    expected = f1_score(y_true, y_pred, average=average, zero_division=0)
    assert metric.compute() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("pos_label", [0, 1])
@pytest.mark.parametrize("seed", range(3))
def test_binary_f1_from_probabilities_equals_sklearn(pos_label, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, size=150)
    probability = np.clip(truth * 0.3 + rng.random(150) * 0.7, 0, 1)
    metric = F1(pos_label=pos_label, threshold=0.5)
    for i in range(0, 150, 40):
        metric.update(probability[i:i + 40, None], truth[i:i + 40])
    expected = f1_score(truth, (probability >= 0.5).astype(int), pos_label=pos_label)
    assert metric.compute() == pytest.approx(expected, abs=1e-12)


def test_f1_edge_cases_follow_sklearn():
    never_right = F1()                    # class 1 never predicted: F1 0, not an error
    never_right.update(np.array([0, 0, 0]), np.array([1, 0, 1]))
    assert never_right.compute() == f1_score([1, 0, 1], [0, 0, 0], zero_division=0) == 0.0
    one_hot = F1(average="macro")
    one_hot.update(np.array([2, 0, 1]), np.eye(3)[[2, 1, 1]])
    assert one_hot.compute() == pytest.approx(f1_score([2, 1, 1], [2, 0, 1], average="macro",
                                                       zero_division=0))
    multiclass = F1()
    multiclass.update(np.array([0, 1, 2]), np.array([0, 1, 2]))
    with pytest.raises(DataError, match="binary"):
        multiclass.compute()
    with pytest.raises(ValueError, match="average"):
        F1(average="samples")
    with pytest.raises(DataError, match="no samples"):
        F1().compute()


@pytest.mark.parametrize("seed", range(3))
def test_accuracy_equals_sklearn_and_top1(seed):
    batches = scores_and_labels(seed, classes=4)
    metric, top1 = Accuracy(), TopK(k=1)
    for preds, labels in batches:
        metric.update(preds, labels)
        top1.update(preds, labels)
    y_pred = np.concatenate([p.argmax(1) for p, _ in batches])
    y_true = np.concatenate([t for _, t in batches])
    assert metric.compute() == pytest.approx(accuracy_score(y_true, y_pred)) == top1.compute()


def test_accuracy_of_binary_logits_needs_a_threshold():
    logits = np.array([[-2.0], [0.5], [3.0]])
    metric = Accuracy(threshold=0.0)
    metric.update(logits, np.array([0, 0, 1]))
    assert metric.compute() == pytest.approx(2 / 3)
    with pytest.raises(DataError, match="threshold"):
        Accuracy().update(logits, np.array([0, 0, 1]))


class TestF1Contract(MetricContract):
    def make_metric(self) -> F1:
        return F1(average="weighted")

    def make_batches(self, seed: int) -> list[tuple[Any, Any]]:
        return scores_and_labels(seed, classes=6, n=90, batch=25)

    def reference(self, preds: Any, labels: Any) -> float:
        return f1_score(labels, preds.argmax(1), average="weighted", zero_division=0)


class TestTopKContract(MetricContract):
    def make_metric(self) -> TopK:
        return TopK(k=3)

    def make_batches(self, seed: int) -> list[tuple[Any, Any]]:
        return scores_and_labels(seed, classes=10, n=90, batch=25)

    def reference(self, preds: Any, labels: Any) -> float:
        top3 = np.argsort(-preds, axis=1, kind="stable")[:, :3]
        return float(np.mean([label in row for row, label in zip(top3, labels)]))
