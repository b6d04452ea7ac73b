"""run_strategy: the tuner's loop around a strategy, with a function as the metric."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from tunekit.criterion import AccuracyCriterion
from tunekit.errors import TrialError, TunekitError
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace
from tunekit.strategy import Strategy, TuneContext
from tunekit.testing import run_strategy

OP = OpKey("fc", "Linear")
INT8 = OpConfig("int8", "static", "asym", "per_channel", "minmax")
SPACE = TuningSpace({OP: (INT8, OpConfig("bf16"), OpConfig("fp32"))})
A, B, C = (SPACE.uniform(p) for p in ("int8", "bf16", "fp32"))
METRIC = {A: 0.5, B: 0.99, C: 1.0}


class Script(Strategy):
    """Proposes a fixed list and records what it saw after each proposal."""

    def __init__(self, *, configs: Sequence[QuantConfig], final: bool = True) -> None:
        self.configs = configs
        self.final = final

    @property
    def first_accept_is_final(self) -> bool:
        return self.final

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        for config in self.configs:
            yield config
            assert ctx.history.last.config == config  # the driver answered this proposal


def counting(metric: dict[QuantConfig, float]) -> tuple[list[QuantConfig], object]:
    calls: list[QuantConfig] = []

    def accuracy(config: QuantConfig) -> float:
        calls.append(config)
        return metric[config]

    return calls, accuracy


def test_repeated_configs_are_answered_without_evaluation() -> None:
    calls, accuracy = counting(METRIC)
    run = run_strategy(Script(configs=[A, B, A, B]), SPACE, accuracy,  # type: ignore[arg-type]
                       AccuracyCriterion(absolute=0.1), stop_on_first_accept=False)
    assert run.status == "strategy_done" and run.proposals == (A, B, A, B)
    assert calls == [C, A, B]  # the baseline (every op fp32), then each config once
    assert run.evaluations == len(run.history) == 2


def test_stops_at_the_first_accepted_trial_unless_the_strategy_says_otherwise() -> None:
    criterion = AccuracyCriterion(absolute=0.05)
    met = run_strategy(Script(configs=[A, B, C]), SPACE, METRIC.get, criterion)  # type: ignore
    assert met.status == "met" and met.proposals == (A, B)
    assert met.first_accepted is not None and met.first_accepted.config == B
    walk = run_strategy(Script(configs=[A, B, C], final=False), SPACE, METRIC.get,  # type: ignore
                        criterion)
    assert walk.status == "strategy_done" and walk.proposals == (A, B, C)


def test_budget_counts_evaluations_not_answered_repeats() -> None:
    run = run_strategy(Script(configs=[A, A, A, B, C]), SPACE, METRIC.get,  # type: ignore
                       AccuracyCriterion(absolute=0.0), max_trials=1, baseline=2.0)
    assert run.status == "max_trials" and run.evaluations == 1 and run.proposals == (A, A, A, B)


def test_a_strategy_that_only_repeats_is_stopped() -> None:
    run = run_strategy(Script(configs=[A] * 10), SPACE, METRIC.get,  # type: ignore
                       max_repeats=3, baseline=2.0)
    assert run.status == "strategy_stuck" and run.evaluations == 1 and len(run.proposals) == 4


def test_max_proposals_bounds_the_run() -> None:
    run = run_strategy(Script(configs=[A, B, C]), SPACE, METRIC.get,  # type: ignore
                       baseline=2.0, max_proposals=2)
    assert run.status == "max_proposals" and run.proposals == (A, B)


def test_trial_errors_become_failed_trials() -> None:
    def accuracy(config: QuantConfig) -> float:
        if config == B:
            raise TrialError("bf16 kernel missing")
        return METRIC[config]

    run = run_strategy(Script(configs=[B, A]), SPACE, accuracy, baseline=1.0)
    failed, ok = run.history.trials
    assert failed.failed and failed.error == "bf16 kernel missing" and not failed.accepted
    assert ok.metric == 0.5 and run.status == "strategy_done"


def test_configs_outside_the_space_are_refused() -> None:
    outside = QuantConfig({OP: OpConfig("int8", "dynamic", None, "per_tensor", None)})
    with pytest.raises(TunekitError, match="outside the tuning space"):
        run_strategy(Script(configs=[outside]), SPACE, METRIC.get, baseline=1.0)  # type: ignore


def test_context_carries_seed_criterion_and_baseline() -> None:
    criterion = AccuracyCriterion(relative=0.2)
    run = run_strategy(Script(configs=[]), SPACE, METRIC.get, criterion, seed=5)  # type: ignore
    assert run.context.criterion is criterion and run.history.baseline_metric == 1.0
    assert run.context.rng.random() == __import__("random").Random(5).random()
