"""Drive a strategy the way the tuner does, with a function in place of model and adaptor.

For strategy tests, comparisons and the contract suite: ``accuracy_fn(config)`` is the metric of
a config (:meth:`tunekit.testing.FakeAdaptor.evaluate`, or any formula), and the loop is the
tuner's own (:func:`tunekit.loop.drive`) — a repeated config is answered from the history without an evaluation, the budget
counts evaluations, an accepted trial ends the run when the policy and the strategy allow it,
and a :class:`~tunekit.errors.TrialError` becomes a failed trial.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tunekit.criterion import AccuracyCriterion
from tunekit.errors import TrialError
from tunekit.history import History, Trial, TrialState
from tunekit.loop import Budget, drive
from tunekit.selection import best_passing
from tunekit.space import OpConfig, QuantConfig, TuningSpace
from tunekit.strategy import Batch, HessianTrace, Needed, Sensitivity, Strategy, TuneContext

AccuracyFn = Callable[[QuantConfig], float]


@dataclass(frozen=True)
class StrategyRun:
    """What one drive produced.

    ``status`` is the tuner's: ``met`` (stopped at an accepted trial), ``max_trials``,
    ``max_proposals`` (a limit of this driver only, for termination checks), ``strategy_stuck``
    or ``strategy_done`` (the strategy returned).
    """

    context: TuneContext
    proposals: tuple[QuantConfig, ...]  # every proposal in order, repeats included
    evaluations: int  # configs this driver evaluated (the baseline not included)
    status: str
    #: per proposal (a batch counts once), its signals as the tuner reads them: (needed, final)
    signals: tuple[tuple[Needed, bool], ...] = ()

    @property
    def history(self) -> History:
        return self.context.history

    @property
    def first_accepted(self) -> Trial | None:
        return next((t for t in self.history if t.accepted), None)

    @property
    def result(self) -> Trial | None:
        """The accepted trial a tuning would return (:func:`tunekit.selection.best_passing`:
        the fewest ops out of the lower precision where configs compare, objective otherwise)."""
        return best_passing(self.history, self.context.criterion)


def run_strategy(strategy: Strategy, space: TuningSpace, accuracy_fn: AccuracyFn,
                 criterion: AccuracyCriterion | None = None, max_trials: int = 100, *,
                 seed: int = 0, baseline: float | None = None, stop_on_first_accept: bool = True,
                 max_proposals: int | None = None, max_repeats: int = 1000,
                 sensitivity: Sensitivity | None = None,
                 hessian: HessianTrace | None = None) -> StrategyRun:
    """Run ``strategy.propose`` over ``space`` until it returns or a limit is reached.

    ``baseline`` defaults to ``accuracy_fn`` of every op in fp32 (the FP32 model, also where the
    space does not allow fp32 for an op) and ``criterion`` to a 1 % relative loss.
    ``stop_on_first_accept`` is the tuner's ``exit_policy.timeout == 0``; a strategy whose
    proposals say their first accepted config is not final (``Batch(..., final=False)``, or the
strategy's ``first_accept_is_final`` default) is driven on past accepted trials. ``max_trials`` counts
    evaluations, as the tuner's budget does; ``max_proposals`` counts every proposal.
    """
    criterion = criterion or AccuracyCriterion(relative=0.01)
    fp32 = QuantConfig({op: OpConfig("fp32") for op in space.ops})
    reference = accuracy_fn(fp32) if baseline is None else baseline
    ctx = TuneContext(space, History(reference), criterion, random.Random(seed), sensitivity,
                      hessian)
    proposals: list[QuantConfig] = []
    signals: list[tuple[Needed, bool]] = []

    def on_proposal(batch: Batch) -> None:
        proposals.extend(batch)
        signals.append((batch.needed, bool(batch.final)))

    def run_trial(number: int, config: QuantConfig, needed: Needed) -> Trial:
        return _evaluate(number, config, accuracy_fn, criterion, reference)

    budget = Budget(max_trials=max_trials, stop_on_first_accept=stop_on_first_accept,
                    max_repeats=max_repeats, max_proposals=max_proposals)
    status = drive(strategy, ctx, run_trial, budget, on_proposal=on_proposal)
    return StrategyRun(ctx, tuple(proposals), len(ctx.history), status, tuple(signals))


def _evaluate(number: int, config: QuantConfig, accuracy_fn: AccuracyFn,
              criterion: AccuracyCriterion, baseline: float) -> Trial:
    try:
        metric = float(accuracy_fn(config))
    except TrialError as exc:
        return Trial(number, config, TrialState.FAILED, error=str(exc))
    return Trial(number, config, TrialState.COMPLETE, metric=metric,
                 accepted=criterion.accepts(metric, baseline))


__all__ = ["AccuracyFn", "StrategyRun", "run_strategy"]
