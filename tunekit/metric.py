"""The Metric plugin interface: streaming, with its direction declared as data."""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np


class Metric(abc.ABC):
    """Base class of metrics (entry-point group ``tunekit.metrics``).

    ``update`` is called once per batch with the model's outputs and the labels as numpy arrays;
    ``compute`` returns the value over everything seen since ``reset``. Batching must not change
    the result (the shipped contract tests check it).
    """

    higher_is_better: ClassVar[bool] = True

    @abc.abstractmethod
    def update(self, preds: np.ndarray, labels: np.ndarray) -> None:
        """Accumulate one batch."""

    @abc.abstractmethod
    def compute(self) -> float:
        """The metric over all batches since the last reset."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget all batches."""

    def bound(self, remaining: int) -> float | None:
        """Optional: the best value :meth:`compute` could still return if ``remaining`` more
        samples came and the model got every one of them right (the highest value for a
        higher-is-better metric, the lowest otherwise); ``None`` if the metric cannot say.

        It must be exact, never a guess: the evaluator stops scoring a candidate (early
        rejection, see docs/tuning-speed.md) once this bound misses the accuracy goal, so a
        bound worse than the truth would reject a model that passes. Averages over samples
        (accuracy, top-k) can give one; corpus-level metrics (F1, mAP) return None and are
        always evaluated in full.
        """
        return None
