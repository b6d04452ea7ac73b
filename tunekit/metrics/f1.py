"""Classification F1 (binary, macro, micro, weighted), equal to scikit-learn's ``f1_score``.

Intel Neural Compressor's "F1" is SQuAD token overlap whatever the task; here classification F1
and SQuAD F1 are separate metrics (:mod:`tunekit.metrics.squad` for the latter).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from tunekit.errors import DataError
from tunekit.metric import Metric
from tunekit.metrics._labels import label_ids, predicted_ids

AVERAGES = ("binary", "macro", "micro", "weighted")


class F1(Metric):
    """F1 score over a stream of batches, as ``sklearn.metrics.f1_score(y_true, y_pred,
    average=average, pos_label=pos_label, zero_division=0)`` over all samples at once.

    Streaming keeps, per class, its true positives, predicted count and true count, so any
    batching gives the same value. Classes are those seen in labels or predictions (scikit-learn's
    default ``labels=None``). A class with no true and no predicted sample never appears, and an
    undefined precision or recall counts as 0 (scikit-learn's ``zero_division`` default, minus its
    warning).

    ``preds`` are class scores ``(N, C)`` (the argmax is the prediction), class ids ``(N,)``, or
    binary scores ``(N,)`` with ``threshold`` set. ``labels`` are class ids or one-hot rows.
    """

    def __init__(self, *, average: str = "binary", pos_label: int = 1,
                 threshold: float | None = None) -> None:
        if average not in AVERAGES:
            raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}")
        if isinstance(pos_label, bool) or not isinstance(pos_label, int):
            raise TypeError(f"pos_label must be an integer class id, got {pos_label!r}")
        self.average = average
        self.pos_label = pos_label
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._tp: Counter[int] = Counter()
        self._pred: Counter[int] = Counter()
        self._true: Counter[int] = Counter()

    def update(self, preds: Any, labels: Any) -> None:
        predicted = predicted_ids(preds, self.threshold)
        truth = label_ids(labels, len(predicted))
        self._tp.update(truth[predicted == truth].tolist())
        self._pred.update(predicted.tolist())
        self._true.update(truth.tolist())

    def compute(self) -> float:
        total = sum(self._true.values())
        if total == 0:
            raise DataError("f1 has seen no samples; the evaluation data yielded no batches")
        classes = sorted(set(self._true) | set(self._pred))
        if self.average == "micro":
            tp = sum(self._tp.values())
            return _f1(tp, total, total)
        if self.average == "binary":
            if len(classes) > 2:
                raise DataError(f"f1 with average 'binary' got {len(classes)} classes; use "
                                "average macro, micro or weighted for multiclass data")
            if len(classes) == 2 and self.pos_label not in classes:
                raise DataError(f"pos_label {self.pos_label} is not a class of the data "
                                f"({classes[0]}, {classes[1]})")
            return self._class_f1(self.pos_label)
        scores = np.array([self._class_f1(c) for c in classes])
        if self.average == "macro":
            return float(scores.mean())
        support = np.array([self._true[c] for c in classes], dtype=np.float64)
        return float(np.average(scores, weights=support))

    def _class_f1(self, cls: int) -> float:
        return _f1(self._tp[cls], self._pred[cls], self._true[cls])


def _f1(tp: int, predicted: int, actual: int) -> float:
    """2·TP / (predicted + actual), 0 when both are 0 (the harmonic mean of precision and
    recall, computed without forming them, as scikit-learn ≥ 1.3 does)."""
    denominator = predicted + actual
    return 2.0 * tp / denominator if denominator else 0.0
