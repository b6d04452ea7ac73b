"""Accuracy: the share of samples whose predicted class equals the label.

Unlike ``topk`` it also reads one binary score per sample (a sigmoid output or a logit) given a
``threshold``, and it agrees with ``sklearn.metrics.accuracy_score`` on the predicted ids.
"""

from __future__ import annotations

from typing import Any

from tunekit.errors import DataError
from tunekit.metric import Metric
from tunekit.metrics._labels import label_ids, predicted_ids


class Accuracy(Metric):
    """Accuracy over a stream of batches.

    ``preds``: class scores ``(N, C)`` (argmax, ties to the lower class), class ids ``(N,)``, or
    binary scores ``(N,)``/``(N, 1)`` compared with ``threshold`` (0.5 for probabilities, 0.0 for
    logits). ``labels``: class ids or one-hot rows.
    """

    def __init__(self, *, threshold: float | None = None) -> None:
        if threshold is not None and (isinstance(threshold, bool)
                                      or not isinstance(threshold, (int, float))):
            raise ValueError(f"threshold must be a number or None, got {threshold!r}")
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._correct = 0
        self._total = 0

    def update(self, preds: Any, labels: Any) -> None:
        predicted = predicted_ids(preds, self.threshold)
        truth = label_ids(labels, len(predicted))
        self._correct += int((predicted == truth).sum())
        self._total += len(predicted)

    def compute(self) -> float:
        if self._total == 0:
            raise DataError("accuracy has seen no samples")
        return self._correct / self._total

    def bound(self, remaining: int) -> float | None:
        """The accuracy if the ``remaining`` unseen samples were all right (see Metric.bound)."""
        total = self._total + max(0, int(remaining))
        return (self._correct + total - self._total) / total if total else None
