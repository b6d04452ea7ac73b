"""Timing a model through its adaptor: warm-up, timed calls with gc off, spread of ratios.

The ``performance`` objective (a plugin) and ``tunekit benchmark`` (the core) must take the same
measurement, or a benchmark would not confirm the speedup a tuning reported. The mechanics live
here, in the core, so that neither reaches into the other: the objective adds its budget and
its interleaving beside FP32, the benchmark its rounds and percentiles. Framework-free: a model
is only ever called through ``adaptor.run_batch``.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

from tunekit.adaptor import Adaptor

#: calls timed whatever the budget (a median of fewer is too easily moved by one outlier)
MIN_CALLS = 5
#: warm-up calls made whatever the budget (the first call of a model pays its set-up)
MIN_WARMUP = 2


def warm(adaptor: Adaptor, model: Any, inputs: Sequence[Any], calls: int,
         budget: float = math.inf) -> float:
    """Up to ``calls`` untimed calls (first calls pay for lazy initialisation, allocator growth
    and kernel selection), stopping after :data:`MIN_WARMUP` once half of ``budget`` s is
    spent; returns the last call's duration (an estimate of one call)."""
    start = last = time.perf_counter()
    duration = 0.0
    for i in range(calls):
        adaptor.run_batch(model, inputs[i % len(inputs)])
        now = time.perf_counter()
        duration, last = now - last, now
        if i + 1 >= MIN_WARMUP and now - start >= budget / 2:
            break
    return duration


def timed(adaptor: Adaptor, model: Any, inputs: Sequence[Any], calls: int,
          budget: float = math.inf) -> list[float]:
    """Each call's seconds, up to ``calls`` calls over ``inputs`` round-robin, stopping once
    ``budget`` s are spent after :data:`MIN_CALLS`; garbage collection is off meanwhile (as
    timeit does: a collection during a timed call would be charged to the model)."""
    times: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(calls):
            start = time.perf_counter()
            adaptor.run_batch(model, inputs[i % len(inputs)])
            times.append(time.perf_counter() - start)
            if len(times) >= MIN_CALLS and sum(times) >= budget:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def time_calls(adaptor: Adaptor, model: Any, inputs: Sequence[Any], warmup: int, calls: int,
               threads: int | None = None,
               budget: float = math.inf) -> tuple[list[float], int | None]:
    """:func:`warm`, then :func:`timed`, under ``threads`` intra-op threads (``None``: as
    configured); the timed calls and the thread count in effect (None if unknown)."""
    with adaptor.threads(threads) as used:
        warm(adaptor, model, inputs, warmup, budget)
        return timed(adaptor, model, inputs, calls, budget), used


def spread(ratios: Sequence[float]) -> float:
    """Half the interquartile range of ``ratios`` relative to their median: ``0.05`` reads
    "±5%". 0 for fewer than two ratios."""
    if len(ratios) < 2:
        return 0.0
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    middle = statistics.median(ratios)
    return (high - low) / 2 / middle if middle > 0 else 0.0


def beside(adaptor: Adaptor, model: Any, reference: Any, inputs: Sequence[Any], warmup: int,
           calls: int, rounds: int, budget: float = math.inf,
           settle: tuple[int, float] | None = None,
           ) -> tuple[list[float], list[float], list[float]]:
    """``model`` and ``reference`` timed in up to ``rounds`` alternating rounds (which goes
    first alternates too), so a change in the machine's load hits both alike: each one's timed
    calls and each round's ratio (reference / model median). Up to ``calls`` calls each in all,
    fewer where ``budget`` s would not hold both models' calls (judged by the warm-up's last
    call of each). ``settle`` ``(n, s)``: stop after ``n`` rounds once the ratios' spread is
    within ``s`` (more rounds would change nothing then, and cost seconds per trial)."""
    pair = warm(adaptor, model, inputs, warmup, budget) \
        + warm(adaptor, reference, inputs, warmup, budget)
    per_round = max(1, calls // rounds if math.isinf(budget)
                    else min(calls // rounds, int(budget / rounds / max(pair, 1e-9))))
    mine: list[float] = []
    theirs: list[float] = []
    ratios: list[float] = []
    for round_ in range(rounds):
        order = [(model, mine), (reference, theirs)]
        for timed_model, times in order if round_ % 2 == 0 else order[::-1]:
            times.extend(timed(adaptor, timed_model, inputs, per_round))
        ratios.append(statistics.median(theirs[-per_round:])
                      / max(statistics.median(mine[-per_round:]), 1e-12))
        if settle is not None and len(ratios) >= settle[0] and spread(ratios) <= settle[1]:
            break
    return mine, theirs, ratios
