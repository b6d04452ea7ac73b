"""Latency: the median time of one inference call on one evaluation batch; and throughput."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tunekit import timing
from tunekit.adaptor import Adaptor, DataBatch
from tunekit.benchmark.load import CpuShare
from tunekit.data import batch_inputs
from tunekit.data import batch_size as samples_in
from tunekit.objective import Objective
from tunekit.objectives._inputs import is_int


class Performance(Objective):
    """Median per-batch latency in seconds, measured through ``adaptor.run_batch``.

    The inputs of the evaluation batches are timed as the user will run the model: real data at
    the real batch size, after ``warmup`` untimed calls (first calls pay for lazy initialisation,
    allocator growth and kernel selection). The median of ``iterations`` calls resists the
    outliers a shared machine produces better than the mean does. The calls are made by
    :mod:`tunekit.timing`, which ``tunekit benchmark`` times with too.

    Only full batches are timed (see :func:`~tunekit.objectives._inputs.batch_inputs`); at most
    ``iterations`` batches are read and reused round-robin, so a large evaluation set costs no
    extra memory. ``threads`` pins the framework's intra-op thread count for the measurement
    (``None``: as configured); latencies taken with different counts are not comparable, so
    the count in effect is recorded with the throughput in :meth:`details`.

    ``budget_s`` caps the timed calls' total time once ``MIN_CALLS`` calls are timed, and the
    warm-up's at half of it once ``MIN_WARMUP`` calls ran (the first calls are the slow ones): a
    model that takes 150 ms a call is timed over ~13 calls instead of 30, which saves seconds per
    measured candidate (and the tuning measures FP32 beside each one: there the budget covers
    both models' timed calls together) while a median of a dozen calls still ranks candidates
    reliably. ``None`` runs every warm-up and timed call.
    """

    #: calls timed whatever the budget (a median of fewer is too easily moved by one outlier)
    MIN_CALLS = timing.MIN_CALLS
    #: warm-up calls made whatever the budget (the first call of a model pays its set-up)
    MIN_WARMUP = timing.MIN_WARMUP
    #: rounds of :meth:`measure_beside`: enough for a spread, few enough to keep rounds long
    ROUNDS = 5
    #: :meth:`measure_beside` stops after ``MIN_ROUNDS`` once the rounds' ratios agree within
    #: ``SETTLED``: two more rounds changed nothing then, and cost 1.5 s of a 4 s tuning of a
    #: ResNet-like CNN (80 ms a call) in ``benchmarks/vs_nncf.py``
    MIN_ROUNDS = 3
    SETTLED = 0.02
    #: the machine's load is read from /proc/stat in 10 ms ticks: over a shorter timing than
    #: this it says nothing, so no ``foreign_cpu`` is recorded
    LOAD_WINDOW_S = 0.5

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

    def measure(self, adaptor: Adaptor, model: Any, data: Iterable[DataBatch]) -> float:
        inputs = batch_inputs(data, self.iterations, self.batch_size, "performance.batch_size")
        times, threads = timing.time_calls(adaptor, model, inputs, self.warmup, self.iterations,
                                           self.threads, self._budget())
        self._times = tuple(times)
        latency = statistics.median(self._times)
        self._record(inputs, latency, threads)
        return latency

    def measure_beside(self, adaptor: Adaptor, model: Any, reference: Any,
                       data: Iterable[DataBatch]) -> tuple[float, float]:
        """Both models timed in alternating rounds (:func:`tunekit.timing.beside`: which goes
        first alternates too; up to ``ROUNDS``, fewer once the ratios settle), so a change in
        the machine's load hits both alike; ``speedup`` (reference / model) and its
        ``spread`` (half the interquartile range of the rounds' own ratios, relative to their
        median) join :meth:`details`, so a figure the machine disturbed says so; and
        ``foreign_cpu``, the share of the CPU other processes used meanwhile (a machine loaded
        throughout can keep the ratio steady and still distort it)."""
        inputs = batch_inputs(data, self.iterations, self.batch_size, "performance.batch_size")
        started = time.perf_counter()
        with adaptor.threads(self.threads) as threads, CpuShare().measure() as share:
            mine, theirs, ratios = timing.beside(adaptor, model, reference, inputs, self.warmup,
                                                 self.iterations, self.ROUNDS, self._budget(),
                                                 (self.MIN_ROUNDS, self.SETTLED))
        self._times = tuple(mine)
        latency, fp32 = statistics.median(mine), statistics.median(theirs)
        self._record(inputs, latency, threads)
        self._details.update(speedup=fp32 / latency if latency > 0 else 0.0,
                             spread=timing.spread(ratios))
        if share.foreign is not None and time.perf_counter() - started >= self.LOAD_WINDOW_S:
            self._details["foreign_cpu"] = min(1.0, share.foreign)
        return latency, fp32

    def details(self) -> Mapping[str, float]:
        """``throughput`` (samples/s at the timed batch size), ``batch_size`` and ``threads``
        (when the adaptor reports its thread count) of the last measurement; after
        :meth:`measure_beside`, also ``speedup`` and its ``spread``."""
        return dict(self._details)

    def times(self) -> tuple[float, ...]:
        """Every timed call's latency in seconds, of the last :meth:`measure` (for percentiles
        beyond the median)."""
        return self._times

    def _budget(self) -> float:
        return math.inf if self.budget_s is None else self.budget_s

    def _record(self, inputs: list[Any], latency: float, threads: int | None) -> None:
        self._details = {"throughput": samples_in(inputs[0]) / latency if latency > 0 else 0.0,
                         "batch_size": float(samples_in(inputs[0]))}
        if threads is not None:
            self._details["threads"] = float(threads)
