"""Top-k accuracy: the share of samples whose label is among the k best-scored classes."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunekit.errors import DataError
from tunekit.metric import Metric

_NO_LABELS = ("the evaluation data yields no labels; give (inputs, labels) batches or use "
              "eval_func")


class TopK(Metric):
    """Top-k accuracy over a stream of batches.

    ``preds`` are per-class scores of shape ``(N, C)`` (logits or probabilities: only their order
    matters), or predicted class ids of shape ``(N,)`` when ``k == 1``. ``labels`` are class ids
    ``(N,)`` (or ``(N, 1)``) or one-hot rows ``(N, C)`` (the class is the row's largest entry, so
    smoothed labels work too).

    Ties are broken towards the lower class index, as ``numpy.argmax`` and a stable descending sort
    do: a label is within the top k when fewer than ``k`` classes score strictly higher than it or
    score equally with a lower index. Tied scores are common in int8 models, whose outputs take few
    distinct values, so without a fixed rule two runs of one candidate could disagree. A NaN score
    ranks below every number, so a model producing NaN never gains accuracy from it.
    """

    def __init__(self, *, k: int = 1) -> None:
        # checked here so that a bad YAML value fails before any model is loaded
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = k
        self.reset()

    def reset(self) -> None:
        self._correct = 0
        self._total = 0

    def update(self, preds: np.ndarray, labels: np.ndarray) -> None:
        if labels is None:
            raise DataError(_NO_LABELS)
        scores = np.asarray(preds)
        truth = np.asarray(labels)
        if scores.ndim == 1:
            hits = self._hits_from_ids(scores, truth)
        elif scores.ndim == 2:
            hits = self._hits_from_scores(scores, truth)
        else:
            raise DataError(f"topk expects predictions of shape (N, C) or (N,), "
                            f"got {scores.shape}")
        self._correct += int(hits.sum())
        self._total += int(hits.size)

    def compute(self) -> float:
        if self._total == 0:
            raise DataError("topk has seen no samples; the evaluation data yielded no batches "
                            "(or only empty ones)")
        return self._correct / self._total

    def bound(self, remaining: int) -> float | None:
        """The accuracy if the ``remaining`` unseen samples were all right (see Metric.bound)."""
        total = self._total + max(0, int(remaining))
        return (self._correct + total - self._total) / total if total else None

    def _hits_from_ids(self, ids: np.ndarray, truth: np.ndarray) -> np.ndarray:
        if self.k != 1:
            raise DataError(f"top-{self.k} needs per-class scores of shape (N, C); the model "
                            f"gives class ids of shape {ids.shape}")
        predicted = _as_class_ids(ids, "predicted class ids")
        classes = _label_ids(truth, len(ids), None)
        return predicted == classes

    def _hits_from_scores(self, scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
        n, c = scores.shape
        classes = _label_ids(truth, n, c)
        values = np.where(np.isnan(scores), -np.inf, scores.astype(np.float64, copy=False))
        own = values[np.arange(n), classes][:, None]
        lower_index = np.arange(c)[None, :] < classes[:, None]
        ahead = (values > own) | ((values == own) & lower_index)
        return ahead.sum(axis=1) < self.k


def _label_ids(truth: np.ndarray, n: int, classes: int | None) -> np.ndarray:
    """Class ids ``(N,)`` from id labels (``(N,)`` or ``(N, 1)``) or one-hot labels ``(N, C)``."""
    if truth.ndim > 2:
        raise DataError(f"labels must be class ids (N,) or one-hot (N, C), "
                        f"got shape {truth.shape}")
    if truth.ndim == 2 and truth.shape[1] > 1:
        return _one_hot_ids(truth, n, classes)
    ids = _as_class_ids(truth.reshape(-1), "labels")
    if ids.shape != (n,):
        raise DataError(f"{ids.size} labels for {n} predictions; labels must be class ids (N,) "
                        "or one-hot (N, C)")
    if classes is not None and ids.size and (ids.min() < 0 or ids.max() >= classes):
        raise DataError(f"labels must be class ids in [0, {classes}), got values "
                        f"{int(ids.min())}..{int(ids.max())}")
    return ids


def _one_hot_ids(truth: np.ndarray, n: int, classes: int | None) -> np.ndarray:
    expected = (n, classes) if classes is not None else (n, truth.shape[1])
    if truth.shape != expected:
        raise DataError(f"one-hot labels must have shape {expected} like the predictions, "
                        f"got {truth.shape}")
    if n and not np.all(truth.max(axis=1) > 0):
        raise DataError("a one-hot label row has no positive entry")
    return truth.argmax(axis=1)


def _as_class_ids(values: Any, what: str) -> np.ndarray:
    """Integer ids; float arrays are accepted when every value is a whole number."""
    array = np.asarray(values)
    if array.ndim == 0:
        raise DataError(f"{what} must be an array of class ids, got a scalar")
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array)) \
            and np.all(array == np.round(array)):
        return array.astype(np.int64)
    raise DataError(f"{what} must be integer class ids, got dtype {array.dtype}")
