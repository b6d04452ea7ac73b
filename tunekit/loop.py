"""The proposal loop shared by the tuner and the strategy test driver.

One place decides what a proposal costs: a config already in the history is answered from it (no
evaluation, no budget), the budget counts evaluated trials, an accepted trial ends the run when
the exit policy and the strategy allow it, and a strategy that only repeats itself is stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from tunekit.errors import TunekitError
from tunekit.history import Trial
from tunekit.space import QuantConfig
from tunekit.strategy import Strategy, TuneContext

#: Evaluates one new config: ``(trial number, config) -> Trial``.
RunTrial = Callable[[int, QuantConfig], Trial]


@dataclass(frozen=True)
class Budget:
    """When to stop. ``deadline`` is a ``time.perf_counter()`` instant (``inf``: none)."""

    max_trials: int = 100
    deadline: float = math.inf
    stop_on_first_accept: bool = True
    max_repeats: int = 1000
    max_proposals: int | None = None  # a limit for termination checks in tests


def drive(strategy: Strategy, ctx: TuneContext, run_trial: RunTrial, budget: Budget,
          on_proposal: Callable[[QuantConfig], None] | None = None) -> str:
    """Feed ``strategy``'s proposals to ``run_trial`` until a stop; returns the status:
    ``met``, ``max_trials``, ``timeout``, ``max_proposals``, ``strategy_stuck`` or
    ``strategy_done``."""
    history, space = ctx.history, ctx.space
    stops = budget.stop_on_first_accept and strategy.first_accept_is_final
    proposals = repeats = 0
    for config in strategy.propose(ctx):
        if budget.max_proposals is not None and proposals >= budget.max_proposals:
            return "max_proposals"
        if not space.contains(config):
            raise TunekitError(f"{type(strategy).__name__} proposed a config outside the tuning "
                               f"space: {config.summary(space.default())}")
        proposals += 1
        if on_proposal is not None:
            on_proposal(config)
        earlier = history.find(config)
        if earlier is not None:
            history.answer(earlier)
            repeats += 1
            if repeats >= budget.max_repeats:
                return "strategy_stuck"
            continue
        repeats = 0
        if len(history) >= budget.max_trials:
            return "max_trials"
        if time.perf_counter() >= budget.deadline:
            return "timeout"
        trial = run_trial(len(history), config)
        history.record(trial)
        if trial.accepted and stops:
            return "met"
    return "strategy_done"
