"""Turning model outputs and labels into class ids, shared by the classification metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunekit.errors import DataError

NO_LABELS = "the evaluation data yields no labels; give (inputs, labels) batches or use eval_func"


def predicted_ids(preds: Any, threshold: float | None) -> np.ndarray:
    """Predicted class ids ``(N,)`` from scores ``(N, C)`` (argmax, ties to the lower class),
    from ids ``(N,)``, or from one binary score per sample thresholded at ``threshold``.

    A single column of scores is ambiguous (a probability or a logit?), so it needs the threshold
    said explicitly: 0.5 for probabilities, 0.0 for logits.
    """
    scores = np.asarray(preds)
    if scores.ndim == 2 and scores.shape[1] > 1:
        return np.where(np.isnan(scores), -np.inf, scores).argmax(axis=1)
    flat = scores.reshape(-1) if scores.ndim == 2 else scores
    if flat.ndim != 1:
        raise DataError(f"predictions must be class scores (N, C), class ids (N,) or binary "
                        f"scores (N,); got shape {scores.shape}")
    if threshold is not None:
        return (flat >= threshold).astype(np.int64)
    return class_ids(flat, "predicted class ids (give 'threshold' for binary scores)")


def label_ids(labels: Any, n: int) -> np.ndarray:
    """Class ids ``(N,)`` from ids (``(N,)`` or ``(N, 1)``) or one-hot rows ``(N, C)``."""
    if labels is None:
        raise DataError(NO_LABELS)
    truth = np.asarray(labels)
    if truth.ndim == 2 and truth.shape[1] > 1:
        ids = truth.argmax(axis=1)
    elif truth.ndim <= 2:
        ids = class_ids(truth.reshape(-1), "labels")
    else:
        raise DataError(f"labels must be class ids (N,) or one-hot (N, C), got {truth.shape}")
    if ids.shape != (n,):
        raise DataError(f"{ids.size} labels for {n} predictions")
    return ids


def class_ids(values: np.ndarray, what: str) -> np.ndarray:
    """Integer ids; float arrays are accepted when every value is a whole number."""
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        return values.astype(np.int64)
    if np.issubdtype(values.dtype, np.floating) and np.all(np.isfinite(values)) \
            and np.all(values == np.round(values)):
        return values.astype(np.int64)
    raise DataError(f"{what} must be integer class ids, got dtype {values.dtype}")
