"""Run several strategies × seeds on one workload, each through the tuner's own loop.

The workload (model, data, evaluation, objectives, criterion, budget) comes from one config and is
set up once: the FP32 baseline, calibration and the model probes are shared. Each run gets a fresh
history and its own seeded context, is driven by :func:`tunekit.loop.drive` exactly as a tuning
would be, and evaluates through an :class:`EvaluationCache`, so identical configs cost one
evaluation across the whole comparison. A cached answer counts as a trial of the asking run with
its originally measured duration: trial counts and times to goal are what the strategy alone
would have spent.

The exit policy's ``max_trials`` and ``timeout == 0`` (stop at the first accepted config) apply;
a positive timeout is not (a time limit would make runs depend on cache hits and machine load).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tunekit import plugins
from tunekit.compare.cache import EvaluationCache
from tunekit.config import TuneSpec
from tunekit.errors import TunekitError
from tunekit.history import History, Trial
from tunekit.loop import Budget, drive
from tunekit.space import QuantConfig
from tunekit.tuner import Parts, Tuner


@dataclass(frozen=True)
class TrialRecord:
    """One trial of one run. ``elapsed_s``: the run's strategy time plus evaluation durations so
    far (cached evaluations at their measured cost)."""

    number: int
    metric: float | None
    objective: float | None
    accepted: bool
    failed: bool
    cached: bool
    duration_s: float
    elapsed_s: float
    config: QuantConfig


@dataclass(frozen=True)
class RunRecord:
    """One strategy with one seed: its trials and how the run ended (the loop's status, or
    ``error: ...`` where the strategy raised)."""

    strategy: str
    seed: int
    status: str
    trials: tuple[TrialRecord, ...]

    @property
    def goal_trial(self) -> TrialRecord | None:
        return next((t for t in self.trials if t.accepted), None)

    def best(self, higher_is_better: bool) -> TrialRecord | None:
        """The tuner's choice: an accepted trial with the lowest objective, else the best metric."""
        accepted = [t for t in self.trials if t.accepted]
        if accepted:
            return min(accepted, key=lambda t: (t.objective is None, t.objective or 0.0))
        scored = [t for t in self.trials if t.metric is not None]
        if not scored:
            return None
        return max(scored, key=lambda t: t.metric if higher_is_better else -t.metric)


@dataclass(frozen=True)
class Comparison:
    baseline: dict[str, Any]
    higher_is_better: bool
    runs: tuple[RunRecord, ...]
    evaluations: int  # configs actually built and scored, across all runs (the baseline excluded)
    target: float | None = None  # the metric a trial must reach (the criterion's, from FP32)


def compare(spec: TuneSpec, strategies: Sequence[str], seeds: Sequence[int],
            cache: EvaluationCache | None = None, parts: Parts | None = None) -> Comparison:
    """Run every strategy (entry-point name; the config's own strategy keeps its parameters)
    with every seed; ``parts`` lets a caller pass a workload built from Python objects."""
    from tunekit.api import parts_from_config

    tuner = Tuner(parts or parts_from_config(spec))
    space = tuner.prepare()
    shared = tuner.context(space, History(tuner.baseline["metric"]), 0)
    cache = cache if cache is not None else EvaluationCache()
    tuning = spec.tuning
    budget = Budget(max_trials=tuning.max_trials, stop_on_first_accept=tuning.timeout == 0)
    runs, evaluations = [], 0
    for name in strategies:
        params = tuning.strategy.params if name == tuning.strategy.name else {}
        for seed in seeds:
            strategy = plugins.create("tunekit.strategies", name, params)
            ctx = replace(shared, history=History(tuner.baseline["metric"]),
                          rng=random.Random(seed))
            run, fresh = _run(name, seed, strategy, ctx, budget, tuner, cache)
            runs.append(run)
            evaluations += fresh
    cache.save()
    return Comparison(dict(tuner.baseline), tuner.criterion.higher_is_better, tuple(runs),
                      evaluations, tuner.criterion.target(tuner.baseline["metric"]))


def _run(name: str, seed: int, strategy: Any, ctx: Any, budget: Budget, tuner: Tuner,
         cache: EvaluationCache) -> tuple[RunRecord, int]:
    records: list[TrialRecord] = []
    evaluated = 0
    inside = 0.0  # wall seconds spent in run_trial: evaluating, or reading the cache
    charged = 0.0  # evaluation seconds charged to the run: measured, or as cached
    started = time.perf_counter()

    def run_trial(number: int, config: QuantConfig) -> Trial:
        nonlocal evaluated, inside, charged
        before = time.perf_counter()
        trial = cache.get(config, number)
        cached = trial is not None
        if trial is None:
            trial = tuner.evaluate(number, config)
            cache.put(trial)
            evaluated += 1
        charged += trial.duration_s
        strategy_time = before - started - inside
        inside += time.perf_counter() - before
        records.append(TrialRecord(number, trial.metric, trial.objective, trial.accepted,
                                   trial.failed, cached, trial.duration_s,
                                   strategy_time + charged, config))
        return trial

    try:
        status = drive(strategy, ctx, run_trial, budget)
    except TunekitError as exc:
        status = f"error: {exc}"
    return RunRecord(name, seed, status, tuple(records)), evaluated


__all__ = ["Comparison", "RunRecord", "TrialRecord", "compare"]
