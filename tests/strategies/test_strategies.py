"""The built-in strategies on FakeAdaptor problems with known answers (digits: conv1 is the
culprit), with the FakeAdaptor's inspection as the sensitivity probe."""

from __future__ import annotations

import pytest

from tunekit.criterion import AccuracyCriterion
from tunekit.errors import NotSupportedError
from tunekit.plugins import PluginError, create
from tunekit.probes import mse
from tunekit.space import QuantConfig
from tunekit.strategies.bayesian import BayesianStrategy
from tunekit.strategies.exhaustive import ExhaustiveStrategy, by_distance
from tunekit.strategies.hawq import HAWQStrategy
from tunekit.strategies.mse import MSEStrategy
from tunekit.strategies.mse_v2 import MSEv2Strategy
from tunekit.strategies.random import RandomStrategy
from tunekit.strategies.tpe import TPEStrategy
from tunekit.strategy import Strategy
from tunekit.testing import DIGITS_OPS, FakeAdaptor, StrategyRun, run_strategy

CONV1, CONV2, CONV3, FC1, FC2 = DIGITS_OPS
EXACT = AccuracyCriterion(absolute=0.0)
#: INC 2.6 on R1 scale0.5 (shared/peers/README.md), evaluations including the FP32 baseline
INC_EVALUATIONS = {"mse": 10, "mse_v2": 4, "bayesian": 58}


def culprit(*names: str) -> FakeAdaptor:
    return FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops=dict.fromkeys(names, 0.1))


def drive(strategy: Strategy, adaptor: FakeAdaptor, seed: int = 0, **kw: object) -> StrategyRun:
    def sensitivity(config: QuantConfig) -> dict:
        outputs = adaptor.inspect(None, adaptor.quantize(None, config, []), list(config.ops), [])
        return {op: mse(*pair) for op, pair in outputs.items()}

    return run_strategy(strategy, adaptor.capabilities(None), adaptor.accuracy, EXACT,
                        seed=seed, sensitivity=sensitivity, hessian=lambda loss: {CONV1: 1.0},
                        **kw)


def float_ops(config: QuantConfig) -> set[str]:
    return {op.name for op, c in config.ops.items() if c.precision != "int8"}


@pytest.mark.parametrize("strategy", [MSEStrategy(), MSEv2Strategy(), HAWQStrategy()],
                         ids=["mse", "mse_v2", "hawq"])
def test_ranked_fallback_finds_the_culprit_in_two_trials(strategy: Strategy) -> None:
    run = drive(strategy, culprit("conv1"))
    assert run.evaluations == 2 and run.first_accepted is not None
    assert float_ops(run.first_accepted.config) == {"conv1"}
    assert run.evaluations + 1 <= min(INC_EVALUATIONS["mse"], INC_EVALUATIONS["mse_v2"])


def test_mse_without_a_probe_falls_back_top_down_then_polishes() -> None:
    adaptor = culprit("conv3")
    run = run_strategy(MSEStrategy(), adaptor.capabilities(None), adaptor.accuracy, EXACT)
    assert [float_ops(c) for c in run.proposals] == [set(), {"conv1"}, {"conv1", "conv2"},
                                                      {"conv1", "conv2", "conv3"}, {"conv3"}]
    assert run.result is not None and float_ops(run.result.config) == {"conv3"}


def test_mse_v2_wins_back_ops_that_were_not_needed() -> None:
    # conv1 and conv2 both lose accuracy; phase 1 falls back the worst (conv1) first, then conv2
    # and, as the goal is then met, phase 2 tries conv1 in int8 again (it stays: still missed)
    adaptor = FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.1, "conv2": 0.05})
    run = drive(MSEv2Strategy(), adaptor, stop_on_first_accept=False)
    assert [float_ops(c) for c in run.proposals] == [set(), {"conv1"}, {"conv1", "conv2"},
                                                      {"conv2"}]
    assert [t.accepted for t in run.history] == [False, False, True, False]


def test_hawq_needs_the_probe() -> None:
    adaptor = culprit("conv1")
    with pytest.raises(NotSupportedError, match="Hessian"):
        run_strategy(HAWQStrategy(), adaptor.capabilities(None), adaptor.accuracy, EXACT)


def test_exhaustive_covers_the_space_once_nearest_first() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS[:2])
    space = adaptor.capabilities(None)
    configs = list(by_distance(space))
    assert len(configs) == len(set(configs)) == space.size()
    distances = [sum(c.ops[op] != space.default().ops[op] for op in space.ops) for c in configs]
    assert distances == sorted(distances)
    run = drive(ExhaustiveStrategy(), culprit("conv1"))
    assert run.first_accepted is not None and float_ops(run.first_accepted.config) == {"conv1"}


@pytest.mark.parametrize("strategy", [RandomStrategy(), TPEStrategy(startup=3),
                                      BayesianStrategy(candidates=100, screening=0)],
                         ids=["random", "tpe", "bayesian"])
def test_searches_are_seeded_fresh_and_meet_the_goal(strategy: Strategy) -> None:
    first = drive(strategy, culprit("conv1"), seed=3)
    assert first.status == "met" and first.evaluations + 1 <= INC_EVALUATIONS["bayesian"]
    assert len(set(first.proposals)) == len(first.proposals), "a config was proposed twice"
    assert drive(strategy, culprit("conv1"), seed=3).proposals == first.proposals
    assert drive(strategy, culprit("conv1"), seed=4).proposals != first.proposals


def test_bayesian_screening_finds_a_single_culprit_first() -> None:
    run = drive(BayesianStrategy(candidates=100), culprit("conv1"), seed=3)
    assert run.status == "met" and run.evaluations == 2  # default int8, then conv1 alone back
    assert drive(BayesianStrategy(candidates=100), culprit("conv1"), seed=4).proposals == \
        run.proposals  # the screening design does not depend on the seed


def test_bayesian_constant_liar_batches_find_the_culprit_without_screening() -> None:
    strategy = BayesianStrategy(candidates=100, screening=0, batch=4)
    run = drive(strategy, culprit("conv1"), seed=3)
    assert run.status == "met"
    assert len(set(run.proposals)) == len(run.proposals), "a batch repeated a config"
    assert drive(strategy, culprit("conv1"), seed=3).proposals == run.proposals


@pytest.mark.parametrize("name, params, message", [
    ("bayesian", {"kappa": 0}, "kappa"), ("bayesian", {"candidates": 0}, "candidates"),
    ("bayesian", {"screening": -1}, "screening"), ("bayesian", {"batch": 0}, "batch"),
    ("tpe", {"startup": -1}, "startup"), ("hawq", {"loss": "cross_entropy"}, "module:attr"),
])
def test_bad_parameters_are_plugin_errors(name: str, params: dict, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        create("tunekit.strategies", name, params)
