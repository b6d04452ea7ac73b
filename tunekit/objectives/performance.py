"""Latency: the median time of one inference call on one evaluation batch."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Iterable
from typing import Any

from tunekit.adaptor import Adaptor, Batch
from tunekit.data import batch_size as samples_in
from tunekit.data import split_batch
from tunekit.errors import DataError
from tunekit.objective import Objective


class Performance(Objective):
    """Median per-batch latency in seconds, measured through ``adaptor.run_batch``.

    The inputs of the evaluation batches are timed as the user will run the model: real data at
    the real batch size, after ``warmup`` untimed calls (first calls pay for lazy initialisation,
    allocator growth and kernel selection). The median of ``iterations`` calls resists the
    outliers a shared machine produces better than the mean does.

    Only full batches are timed: with ``batch_size=None``, those of the largest size the data
    yields, so a smaller last batch does not skew the figure; with ``batch_size=n``, the first
    ``n`` samples of every batch holding at least ``n``. Inputs are cut by slicing (``x[:n]``),
    which tensors and arrays of every framework support, so this objective stays framework-free.
    At most ``iterations`` batches are read and they are reused round-robin, so a large
    evaluation set costs no extra memory.
    """

    direction = "minimize"
    costly = True
    unit = "s"

    def __init__(self, *, warmup: int = 5, iterations: int = 30,
                 batch_size: int | None = None) -> None:
        # checked here so that a bad YAML value fails before any model is loaded
        if not _is_int(warmup) or warmup < 0:
            raise ValueError(f"warmup must be an integer ≥ 0, got {warmup!r}")
        if not _is_int(iterations) or iterations < 1:
            raise ValueError(f"iterations must be an integer ≥ 1, got {iterations!r}")
        if batch_size is not None and (not _is_int(batch_size) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.warmup = warmup
        self.iterations = iterations
        self.batch_size = batch_size

    def measure(self, adaptor: Adaptor, model: Any, data: Iterable[Batch]) -> float:
        inputs = self._timed_inputs(data)
        for i in range(self.warmup):
            adaptor.run_batch(model, inputs[i % len(inputs)])
        times = []
        # as timeit does: a collection during a timed call would be charged to the model
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for i in range(self.iterations):
                batch = inputs[i % len(inputs)]
                start = time.perf_counter()
                adaptor.run_batch(model, batch)
                times.append(time.perf_counter() - start)
        finally:
            if gc_was_enabled:
                gc.enable()
        return statistics.median(times)

    def _timed_inputs(self, data: Iterable[Batch]) -> list[Any]:
        """Up to ``iterations`` batch inputs, all of one size (see the class docstring)."""
        chosen: list[Any] = []
        size = self.batch_size or 1
        largest = 0
        for batch in data:
            inputs = split_batch(batch)[0]
            n = samples_in(inputs)
            largest = max(largest, n)
            if self.batch_size is not None:
                if n >= self.batch_size:
                    chosen.append(_first(inputs, self.batch_size))
            elif n > size:  # a larger batch: the smaller ones seen so far were a ragged tail
                size, chosen = n, [inputs]
            elif n == size:
                chosen.append(inputs)
            if len(chosen) >= self.iterations:
                break
        if largest == 0:
            raise DataError("the evaluation data yielded no samples to time; check the dataset "
                            "and the dataloader")
        if not chosen:
            raise DataError(f"performance.batch_size is {self.batch_size} but the evaluation "
                            f"batches hold at most {largest} samples; lower batch_size or give "
                            "a dataloader with larger batches")
        return chosen


def _first(inputs: Any, n: int) -> Any:
    """The first ``n`` samples of a batch's inputs (a tensor, or a tuple/list/dict of them)."""
    if isinstance(inputs, dict):
        return {key: _first(value, n) for key, value in inputs.items()}
    if isinstance(inputs, list):
        return [_first(value, n) for value in inputs]
    if isinstance(inputs, tuple):
        return tuple(_first(value, n) for value in inputs)
    return inputs[:n]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
