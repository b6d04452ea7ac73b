"""The batch loop (tunekit.loop.drive) with the numpy FakeAdaptor: batches are answered in batch
order, the first accepted config in batch order wins, and how a batch is evaluated (one process in
order, or workers in any order) does not change the history."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tunekit.criterion import AccuracyCriterion
from tunekit.errors import TunekitError
from tunekit.history import History, Trial, TrialState
from tunekit.loop import Budget, drive
from tunekit.space import QuantConfig
from tunekit.strategy import Batch, Strategy, TuneContext
from tunekit.testing import DIGITS_OPS, FakeAdaptor

ADAPTOR = FakeAdaptor(ops=DIGITS_OPS, base_accuracy=1.0, drops={"conv2": 0.2, "fc1": 0.2})
SPACE = ADAPTOR.capabilities(None)
CRITERION = AccuracyCriterion(absolute=0.25)


def singles() -> list[QuantConfig]:
    """Default int8, then each op alone in fp32: those of conv2 and fc1 are accepted."""
    default = SPACE.default()
    return [default] + [default.with_op(op, SPACE.option(op, "fp32")) for op in SPACE.ops]


class Fixed(Strategy):
    """Proposes ``singles()`` as one batch, or one by one; records what it read back."""

    def __init__(self, *, batch: bool = True) -> None:
        self.batch = batch

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig | Batch]:
        if self.batch:
            yield Batch(singles())
        else:
            yield from singles()


def run(strategy: Strategy, stop: bool = True, max_trials: int = 100,
        reverse: bool = False) -> tuple[str, History]:
    ctx = TuneContext(SPACE, History(1.0), CRITERION, random.Random(0))

    def run_trial(number: int, config: QuantConfig, needed: object = "exact") -> Trial:
        metric = ADAPTOR.evaluate(config)
        return Trial(number, config, TrialState.COMPLETE, metric=metric,
                     accepted=CRITERION.accepts(metric, 1.0))

    def workers(first: int, configs: Sequence[QuantConfig], stop_at_accept: bool) -> list[Trial]:
        """Evaluates in reverse order, as busy workers might, and answers in batch order."""
        done = {c: run_trial(first + i, c) for i, c in reversed(list(enumerate(configs)))}
        trials = [done[c] for c in configs]
        winner = next((i for i, t in enumerate(trials) if t.accepted), None)
        return trials[:winner + 1] if stop_at_accept and winner is not None else trials

    status = drive(strategy, ctx, run_trial, Budget(max_trials=max_trials,
                                                    stop_on_first_accept=stop),
                   run_batch=workers if reverse else None)
    return status, ctx.history


def configs(history: History) -> list[QuantConfig]:
    return [t.config for t in history]


def test_the_first_accepted_config_in_batch_order_wins_as_one_by_one() -> None:
    status, history = run(Fixed())
    assert status == "met" and history.last.config == singles()[1 + SPACE.ops.index(
        next(op for op in SPACE.ops if op.name == "conv2"))]
    assert configs(history) == configs(run(Fixed(batch=False))[1])


def test_workers_answering_out_of_order_give_the_same_history() -> None:
    for stop in (True, False):
        in_order, reversed_ = run(Fixed(), stop=stop), run(Fixed(), stop=stop, reverse=True)
        assert in_order[0] == reversed_[0]
        assert [(t.number, t.config, t.metric) for t in in_order[1]] == \
            [(t.number, t.config, t.metric) for t in reversed_[1]]


def test_without_stopping_every_config_of_the_batch_is_answered() -> None:
    status, history = run(Fixed(), stop=False)
    assert status == "strategy_done" and configs(history) == singles()
    assert history.last.config == singles()[-1]


def test_the_budget_cuts_a_batch() -> None:
    status, history = run(Fixed(), stop=False, max_trials=3)
    assert status == "max_trials" and configs(history) == singles()[:3]


def test_a_batch_holding_a_config_twice_is_refused() -> None:
    class Twice(Strategy):
        def propose(self, ctx: TuneContext) -> Iterator[Batch]:
            yield Batch([SPACE.default(), SPACE.default()])

    with pytest.raises(TunekitError, match="holds a config twice"):
        run(Twice())


def test_a_batch_already_answered_costs_no_evaluation() -> None:
    class Again(Strategy):
        def propose(self, ctx: TuneContext) -> Iterator[Batch]:
            yield Batch(singles()[:2])
            yield Batch(reversed(singles()[:2]))

    status, history = run(Again(), stop=False)
    assert status == "strategy_done" and len(history) == 2
    assert history.last.config == singles()[0]


def test_a_list_instead_of_a_batch_is_refused_with_the_fix() -> None:
    class Listing(Strategy):
        def propose(self, ctx: TuneContext) -> Iterator[Any]:
            yield singles()[:2]

    with pytest.raises(TunekitError, match="QuantConfig or a tunekit.Batch of them, not a list"):
        run(Listing())
