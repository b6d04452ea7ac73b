"""Scoring a model: a Metric over a dataloader, or the user's own ``eval_func``.

Early rejection: given ``reject_if`` (a test on a metric value), the evaluator stops scoring a
candidate as soon as the metric's :meth:`~tunekit.metric.Metric.bound` (the value reached if
every remaining sample were right) passes that test, e.g. "misses the accuracy goal". The bound
is exact, so a candidate is only stopped when its full evaluation could not pass either; its
returned value is then the bound (an upper bound of its true metric for a higher-is-better
metric) and :attr:`Evaluator.last_rejected` is True. The number of samples a full pass reads is
learnt from the first full pass (the FP32 baseline); until then, and whenever a pass reads a
different number, no candidate is rejected.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

from tunekit.adaptor import Adaptor
from tunekit.errors import ConfigError, UserCodeError
from tunekit.metric import Metric
from tunekit.progress import progress
from tunekit.references import call_user
from tunekit.sanity import PredictionSpread


def as_number(value: Any, what: str) -> float:
    """A metric value as a float; anything else (None, a dict, a string) is the user's bug."""
    if isinstance(value, bool) or value is None:
        raise UserCodeError(f"{what} returned {value!r}; it must return a number (the metric)")
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)  # numpy / torch / tf scalars
    shape = getattr(value, "shape", None)
    if callable(item) and (shape is None or tuple(shape) in ((), (1,))):
        return float(item())
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise UserCodeError(f"{what} returned {shown} (a {type(value).__name__}); it must return a "
                        "number (the metric), e.g. a float accuracy")


class Evaluator:
    """Scores models one way for the whole tuning, so baseline and candidates are comparable."""

    def __init__(self, adaptor: Adaptor, data: Iterable[Any] | None = None,
                 metric: Metric | None = None, eval_func: Callable[[Any], Any] | None = None,
                 eval_func_name: str = "eval_func") -> None:
        if (metric is None) == (eval_func is None):
            raise ConfigError("evaluation", "give either a metric with evaluation data or an "
                                            "eval_func (model -> float)")
        if metric is not None and data is None:
            raise ConfigError("evaluation.data", "is required with a metric")
        self.adaptor = adaptor
        # a one-shot iterator would be empty from the second trial on: keep its batches
        self.data = list(data) if data is not None and iter(data) is data else data
        self.metric = metric
        self.eval_func = eval_func
        self.eval_func_name = eval_func_name
        #: samples in one full pass over ``data`` (learnt from the first full pass)
        self.total_samples: int | None = None
        #: whether the last call stopped early (see the module docstring)
        self.last_rejected = False
        #: samples the last call scored
        self.last_samples = 0
        self._size_varies = False
        #: how varied the last scored model's predictions were (metric path; baseline checks)
        self.spread: PredictionSpread | None = None

    @property
    def can_reject(self) -> bool:
        """Whether early rejection is possible: a metric with a bound and a known pass size."""
        return (self.metric is not None and self.total_samples is not None
                and type(self.metric).bound is not Metric.bound)

    @property
    def higher_is_better(self) -> bool | None:
        return type(self.metric).higher_is_better if self.metric is not None else None

    def __call__(self, model: Any, label: str = "evaluate",
                 reject_if: Callable[[float], bool] | None = None) -> float:
        """The metric of ``model``; with ``reject_if``, stops as soon as the metric's bound
        satisfies it (see the module docstring)."""
        self.last_rejected, self.last_samples = False, 0
        if self.eval_func is not None:
            value = call_user(self.eval_func, model, what=self.eval_func_name)
            return as_number(value, self.eval_func_name)
        assert self.metric is not None and self.data is not None
        if not self.can_reject:
            reject_if = None
        self.metric.reset()
        self.spread = PredictionSpread()
        seen = 0
        batches = self.adaptor.predict(model, self.data)
        try:
            for preds, labels in progress(batches, label, total=_length(self.data)):
                self.metric.update(preds, labels)
                self.spread.update(preds)
                seen += _samples(preds, labels)
                if reject_if is None:
                    continue
                assert self.total_samples is not None
                if seen >= self.total_samples:  # nothing left to skip (or the data grew)
                    reject_if = None
                    continue
                bound = self.metric.bound(self.total_samples - seen)
                if bound is not None and math.isfinite(bound) and reject_if(bound):
                    self.last_rejected, self.last_samples = True, seen
                    return float(bound)
        finally:
            close = getattr(batches, "close", None)
            if callable(close):
                close()  # a generator stopped early releases the model and its inputs now
        self.last_samples = seen
        if self.total_samples is None and not self._size_varies:
            self.total_samples = seen
        elif self.total_samples is not None and self.total_samples != seen:
            self.total_samples, self._size_varies = None, True  # never reject on such data
        value = as_number(self.metric.compute(), f"metric {type(self.metric).__name__}")
        return value if math.isfinite(value) else math.nan

def _length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:
        return None


def _samples(preds: Any, labels: Any) -> int:
    """Samples in one batch: the length of its labels, else of its predictions."""
    for part in (labels, preds):
        try:
            return len(part)
        except TypeError:
            continue
    return 0
