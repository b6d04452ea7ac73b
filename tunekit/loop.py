"""The proposal loop shared by the tuner and the strategy test driver.

One place decides what a proposal costs: a config already in the history is answered from it (no
evaluation, no budget), the budget counts evaluated trials, an accepted trial ends the run when
the exit policy and the strategy allow it, and a strategy that only repeats itself is stopped.

A proposal is a :class:`~tunekit.strategy.Batch` of independent configs (a single config is a
batch of one) with its signals (how much of the metric it needs, whether its first accepted
config is final). Its new configs go to ``run_batch`` together, under those signals, so workers
can evaluate them at the same time; the trials come back in batch order and are recorded in that
order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tunekit.errors import TunekitError
from tunekit.history import History, Trial
from tunekit.space import QuantConfig, TuningSpace
from tunekit.strategy import Batch, Needed, Strategy, TuneContext, as_batch

#: Evaluates one new config: ``(trial number, config, needed) -> Trial``; ``needed`` is its
#: proposal's :attr:`~tunekit.strategy.Batch.needed` (when it may be rejected early).
RunTrial = Callable[[int, QuantConfig, Needed], Trial]

#: Evaluates new configs: ``(number of the first, batch, stop_at_accept) -> trials`` in the
#: batch's order, under its signals (``batch.needed``). With ``stop_at_accept`` the trials end at
#: the first accepted one (the configs after it need no answer); otherwise there is one trial per
#: config.
RunBatch = Callable[[int, Batch, bool], list[Trial]]


@dataclass(frozen=True)
class Budget:
    """When to stop. ``deadline`` is a ``time.perf_counter()`` instant (``inf``: none)."""

    max_trials: int = 100
    deadline: float = math.inf
    stop_on_first_accept: bool = True
    max_repeats: int = 1000
    max_proposals: int | None = None  # a limit for termination checks in tests


def in_order(run_trial: RunTrial) -> RunBatch:
    """A :data:`RunBatch` for one process: the configs one after the other, stopping at the
    first accepted one when asked (so a batch costs what the same configs yielded one by one
    would)."""

    def run_batch(first: int, batch: Batch, stop_at_accept: bool) -> list[Trial]:
        trials = []
        needed = "exact" if batch.needed is None else batch.needed
        for number, config in enumerate(batch, start=first):
            trials.append(run_trial(number, config, needed))
            if stop_at_accept and trials[-1].accepted:
                break
        return trials

    return run_batch


def drive(strategy: Strategy, ctx: TuneContext, run_trial: RunTrial, budget: Budget,
          on_proposal: Callable[[Batch], None] | None = None,
          run_batch: RunBatch | None = None) -> str:
    """Feed ``strategy``'s proposals to ``run_batch`` (default: ``run_trial`` in order) until a
    stop; returns the status: ``met``, ``max_trials``, ``timeout``, ``max_proposals``,
    ``strategy_stuck`` or ``strategy_done``. ``on_proposal`` sees each proposal as a batch
    with its signals resolved."""
    history, space = ctx.history, ctx.space
    run_batch = run_batch or in_order(run_trial)
    proposals = repeats = 0
    for proposal in strategy.propose(ctx):
        try:
            batch = as_batch(proposal, strategy)
        except TypeError as exc:
            raise TunekitError(f"{type(strategy).__name__}: {exc}") from None
        if not batch:
            continue
        if budget.max_proposals is not None and proposals >= budget.max_proposals:
            return "max_proposals"
        _check_space(strategy, space, batch)
        proposals += len(batch)
        if on_proposal is not None:
            on_proposal(batch)
        fresh = _fresh(history, batch)
        if not fresh:
            history.answer(_answer(history, batch[-1]))
            repeats += 1
            if repeats >= budget.max_repeats:
                return "strategy_stuck"
            continue
        repeats = 0
        room = budget.max_trials - len(history)
        if room <= 0:
            return "max_trials"
        if time.perf_counter() >= budget.deadline:
            return "timeout"
        stage = ctx.notes.stage
        # per proposal: a strategy's first accepted config may be final in one stage (basic's
        # single-op fallbacks) and a step on the way in the next (before its polish)
        stops = budget.stop_on_first_accept and bool(batch.final)
        for trial in run_batch(len(history), batch.with_configs(fresh[:room]), stops):
            history.record(trial if trial.stage == stage else replace(trial, stage=stage))
            if trial.accepted and stops:
                return "met"
        if len(fresh) > room:
            return "max_trials"
        history.answer(_answer(history, batch[-1]))
    return "strategy_done"


def _check_space(strategy: Strategy, space: TuningSpace, batch: Sequence[QuantConfig]) -> None:
    if len(set(batch)) < len(batch):
        raise TunekitError(f"{type(strategy).__name__} proposed a batch that holds a config "
                           "twice; a batch's configs must differ")
    for config in batch:
        if not space.contains(config):
            raise TunekitError(f"{type(strategy).__name__} proposed a config outside the tuning "
                               f"space: {config.summary(space.default())}")


def _fresh(history: History, batch: Sequence[QuantConfig]) -> list[QuantConfig]:
    """The batch's configs not in the history, each once, in batch order."""
    return list(dict.fromkeys(c for c in batch if history.find(c) is None))


def _answer(history: History, config: QuantConfig) -> Trial:
    trial = history.find(config)
    assert trial is not None, "every config of an answered batch is in the history"
    return trial
