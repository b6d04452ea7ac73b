"""Run several strategies × seeds on one workload, each through the tuner's own loop.

The workload (model, data, evaluation, objectives, criterion, budget) comes from one config and is
set up once by a :class:`~tunekit.runner.TrialRunner`: the FP32 baseline, calibration and the
model probes are shared. Each run gets a fresh history and its own seeded context, is driven by
:func:`tunekit.loop.drive` exactly as a tuning would be (each strategy's proposals under their own
signals: how much of the metric they need, whether the first accepted config is final), and
evaluates through an :class:`EvaluationCache`, so identical evaluations cost one across the whole
comparison. A cached answer counts as a trial of the asking run with its originally measured
duration: trial counts and times to goal are what the strategy alone would have spent. Each
run's best trial is the one a tuning would keep (:func:`tunekit.selection.is_better`).

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
from tunekit.runner import Parts, TrialRunner
from tunekit.selection import is_better
from tunekit.space import QuantConfig
from tunekit.strategy import Needed
from tunekit.workspace import Workspace


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
    #: the number of the trial a tuning would keep (:func:`tunekit.selection.is_better`)
    best_number: int | None = None

    @property
    def goal_trial(self) -> TrialRecord | None:
        return next((t for t in self.trials if t.accepted), None)

    @property
    def best(self) -> TrialRecord | None:
        """The tuner's choice among this run's trials, or None (none was kept)."""
        return next((t for t in self.trials if t.number == self.best_number), None)


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

    parts = parts or parts_from_config(spec)
    workspace = Workspace(parts.spec.tuning.workspace)
    workspace.prepare(False)
    runner = TrialRunner(parts, workspace)
    space = runner.set_up()
    runner.measure_baseline()
    runner.calibrate(space)
    shared = runner.context(space, History(runner.baseline["metric"]), 0)
    cache = cache if cache is not None else EvaluationCache()
    tuning = spec.tuning
    budget = Budget(max_trials=tuning.max_trials, stop_on_first_accept=tuning.timeout == 0)
    runs, evaluations = [], 0
    for name in strategies:
        params = tuning.strategy.params if name == tuning.strategy.name else {}
        for seed in seeds:
            strategy = plugins.create("tunekit.strategies", name, params)
            ctx = replace(shared, history=History(runner.baseline["metric"]),
                          rng=random.Random(seed))
            run, fresh = _run(name, seed, strategy, ctx, budget, runner, cache)
            runs.append(run)
            evaluations += fresh
    cache.save()
    criterion = runner.criterion
    return Comparison(dict(runner.baseline), criterion.higher_is_better, tuple(runs),
                      evaluations, criterion.target(runner.baseline["metric"]))


def _run(name: str, seed: int, strategy: Any, ctx: Any, budget: Budget, runner: TrialRunner,
         cache: EvaluationCache) -> tuple[RunRecord, int]:
    records: list[TrialRecord] = []
    evaluated = 0
    inside = 0.0  # wall seconds spent in run_trial: evaluating, or reading the cache
    charged = 0.0  # evaluation seconds charged to the run: measured, or as cached
    started = time.perf_counter()
    best: list[Trial] = []  # the trial a tuning would keep so far, if any

    def run_trial(number: int, config: QuantConfig, needed: Needed) -> Trial:
        nonlocal evaluated, inside, charged
        before = time.perf_counter()
        trial = cache.get(config, number, needed)
        cached = trial is not None
        if trial is None:
            trial = runner.run(number, config, needed)[0]
            cache.put(trial, needed)
            evaluated += 1
        if is_better(trial, best[0] if best else None, runner.criterion,
                     lambda t: runner.not_faster(t.details)):
            best[:] = [trial]
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
    return RunRecord(name, seed, status, tuple(records),
                     best[0].number if best else None), evaluated


__all__ = ["Comparison", "RunRecord", "TrialRecord", "compare"]
