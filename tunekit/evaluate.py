"""Scoring a model: a Metric over a dataloader, or the user's own ``eval_func``."""

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

    @property
    def higher_is_better(self) -> bool | None:
        return type(self.metric).higher_is_better if self.metric is not None else None

    def __call__(self, model: Any, label: str = "evaluate") -> float:
        if self.eval_func is not None:
            value = call_user(self.eval_func, model, what=self.eval_func_name)
            return as_number(value, self.eval_func_name)
        assert self.metric is not None and self.data is not None
        self.metric.reset()
        for preds, labels in progress(self.adaptor.predict(model, self.data), label,
                                      total=_length(self.data)):
            self.metric.update(preds, labels)
        value = as_number(self.metric.compute(), f"metric {type(self.metric).__name__}")
        return value if math.isfinite(value) else math.nan


def _length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:
        return None
