"""Latency: the median time of one inference call on one evaluation batch; and throughput."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tunekit.adaptor import Adaptor, Batch
from tunekit.data import batch_size as samples_in
from tunekit.objective import Objective
from tunekit.objectives._inputs import batch_inputs, is_int


class Performance(Objective):
    """Median per-batch latency in seconds, measured through ``adaptor.run_batch``.

    The inputs of the evaluation batches are timed as the user will run the model: real data at
    the real batch size, after ``warmup`` untimed calls (first calls pay for lazy initialisation,
    allocator growth and kernel selection). The median of ``iterations`` calls resists the
    outliers a shared machine produces better than the mean does.

    Only full batches are timed (see :func:`~tunekit.objectives._inputs.batch_inputs`); at most
    ``iterations`` batches are read and reused round-robin, so a large evaluation set costs no
    extra memory. ``threads`` pins the framework's intra-op thread count for the measurement
    (``None``: as configured); latencies taken with different counts are not comparable, so
    the count in effect is recorded with the throughput in :meth:`details`.

    ``budget_s`` caps the timed calls' total time once ``MIN_CALLS`` calls are timed, and the
    warm-up's at half of it once ``MIN_WARMUP`` calls ran (the first calls are the slow ones): a
    model that takes 150 ms a call is timed over ~13 calls instead of 30, which saves seconds per
    measured candidate (and the tuning measures FP32 beside each one) while a median of a dozen
    calls still ranks candidates reliably. ``None`` runs every warm-up and timed call.
    """

    #: calls timed whatever the budget (a median of fewer is too easily moved by one outlier)
    MIN_CALLS = 5
    #: warm-up calls made whatever the budget (the first call of a model pays its set-up)
    MIN_WARMUP = 2

    direction = "minimize"
    costly = True
    drifts = True
    unit = "s"

    def __init__(self, *, warmup: int = 5, iterations: int = 30,
                 batch_size: int | None = None, threads: int | None = None,
                 budget_s: float | None = 2.0) -> None:
        # checked here so that a bad YAML value fails before any model is loaded
        if not is_int(warmup) or warmup < 0:
            raise ValueError(f"warmup must be an integer ≥ 0, got {warmup!r}")
        if not is_int(iterations) or iterations < 1:
            raise ValueError(f"iterations must be an integer ≥ 1, got {iterations!r}")
        if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        if threads is not None and (not is_int(threads) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        if budget_s is not None and (isinstance(budget_s, bool) or not isinstance(
                budget_s, (int, float)) or budget_s <= 0):
            raise ValueError(f"budget_s must be a positive number of seconds or None, got "
                             f"{budget_s!r}")
        self.warmup = warmup
        self.iterations = iterations
        self.batch_size = batch_size
        self.threads = threads
        self.budget_s = budget_s
        self._details: dict[str, float] = {}
        self._times: tuple[float, ...] = ()

    def measure(self, adaptor: Adaptor, model: Any, data: Iterable[Batch]) -> float:
        inputs = batch_inputs(data, self.iterations, self.batch_size, "performance.batch_size")
        with adaptor.threads(self.threads) as threads:
            latency = self._time(adaptor, model, inputs)
        self._details = {"throughput": samples_in(inputs[0]) / latency if latency > 0 else 0.0,
                         "batch_size": float(samples_in(inputs[0]))}
        if threads is not None:
            self._details["threads"] = float(threads)
        return latency

    def details(self) -> Mapping[str, float]:
        """``throughput`` (samples/s at the timed batch size), ``batch_size`` and ``threads``
        (when the adaptor reports its thread count) of the last measurement."""
        return dict(self._details)

    def times(self) -> tuple[float, ...]:
        """Every timed call's latency in seconds, of the last :meth:`measure` (for percentiles
        beyond the median, as ``tunekit benchmark`` reports)."""
        return self._times

    def _time(self, adaptor: Adaptor, model: Any, inputs: list[Any]) -> float:
        budget = math.inf if self.budget_s is None else self.budget_s
        warm_start = time.perf_counter()
        for i in range(self.warmup):
            adaptor.run_batch(model, inputs[i % len(inputs)])
            if i + 1 >= self.MIN_WARMUP and time.perf_counter() - warm_start >= budget / 2:
                break
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
                if len(times) >= self.MIN_CALLS and sum(times) >= budget:
                    break
        finally:
            if gc_was_enabled:
                gc.enable()
        self._times = tuple(times)
        return statistics.median(times)
