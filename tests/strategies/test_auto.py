"""AutoStrategy, the default: proxy-ranked group fallback then polish, on FakeAdaptor problems
with known answers, through the real tuner where the probes matter; and the contract."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tunekit import config
from tunekit.criterion import AccuracyCriterion
from tunekit.evaluate import Evaluator
from tunekit.metrics.topk import TopK
from tunekit.space import OpKey
from tunekit.strategies.auto import AutoStrategy
from tunekit.strategy import Strategy
from tunekit.testing import (DIGITS_OPS, FakeAdaptor, FakeModel, ModelledLatency, fake_data,
                             run_strategy)
from tunekit.testing.strategy_contract import StrategyContract
from tunekit.tuner import Parts, Tuner

DATA = fake_data(200, 100)


class TestAutoContract(StrategyContract):
    @pytest.fixture(params=[{}, {"tune_items": "none"}], ids=["items", "no_items"])
    def strategy(self, request: pytest.FixtureRequest) -> Strategy:
        return AutoStrategy(**request.param)


def tune(tmp_path: Path, adaptor: FakeAdaptor, **strategy: str):
    spec = config.parse({"model": {"framework": "pytorch", "factory": "m:f"},
                         "tuning": {"accuracy_criterion": {"relative": 0.01},
                                    "workspace": {"path": str(tmp_path / "ws")}}},
                        check_plugins=False)
    assert spec.tuning.strategy.name == "auto"  # the default
    parts = Parts(spec, adaptor, FakeModel(), DATA, Evaluator(adaptor, DATA, TopK()),
                  AutoStrategy(**strategy), [("latency", ModelledLatency(), 1.0)])
    return Tuner(parts).run()


@pytest.mark.parametrize("seed", range(4))
def test_a_thousand_ops_with_few_culprits_cost_few_evaluations(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    ops = [OpKey(f"layer{i:04d}", rng.choice(["Linear", "Conv2d"])) for i in range(1000)]
    culprits = rng.sample(ops, 2 + seed % 2)
    adaptor = FakeAdaptor(ops=ops, drops={op.name: 0.05 for op in culprits})
    result = tune(tmp_path, adaptor)
    assert result.met
    assert set(result.to_dict()["fallback_ops"]) == {op.name for op in culprits}
    assert result.evaluations - 1 == len(result.trials) <= 25  # evaluations, baseline apart
    stages = result.to_dict()["stages"]
    assert list(stages)[0] == "default" and "group_fallback" in stages and "polish" in stages
    scores = json.loads((tmp_path / "ws" / "result.json").read_text())["sensitivity"]["mse"]
    assert len(scores) == 1000 and {name for name, score in scores.items() if score > 0} \
        == {op.name for op in culprits}


def test_ops_that_matter_only_in_pairs_are_found_together() -> None:
    ops = [OpKey(f"op{i:02d}", "Linear") for i in range(40)]
    pair = {"op11", "op29"}
    space = FakeAdaptor(ops=ops).capabilities(None)

    def accuracy(config) -> float:  # either op in int8 costs the whole loss
        return 0.5 if any(config.precision_of(op) == "int8" for op in ops if op.name in pair) \
            else 0.99

    def sensitivity(config):
        return {op: 0.3 if op.name in pair else 0.01 * (op.name < "op05") for op in config.ops}

    run = run_strategy(AutoStrategy(), space, accuracy, AccuracyCriterion(relative=0.01),
                       sensitivity=sensitivity)
    assert run.result is not None
    assert {op.name for op, c in run.result.config.ops.items() if c.precision != "int8"} == pair
    assert run.evaluations <= 10


def test_ties_in_the_error_proxy_are_broken_by_the_hessian_trace() -> None:
    ops = [OpKey(f"op{i}", "Linear") for i in range(16)]
    space = FakeAdaptor(ops=ops).capabilities(None)

    def accuracy(config) -> float:
        return 0.5 if config.precision_of(ops[13]) == "int8" else 0.99

    run = run_strategy(AutoStrategy(tune_items="none"), space, accuracy,
                       AccuracyCriterion(relative=0.01),
                       sensitivity=lambda config: {op: 0.0 for op in config.ops},
                       hessian=lambda loss: {op: 2.0 if op == ops[13] else 1.0 for op in ops})
    # default, then the top-ranked op alone meets the goal: no trial is spent on op0..op12
    assert len(run.history) == 2 and run.result is not None
    assert run.context.notes.sensitivity["hessian"]["op13"] == 2.0


def test_digits_culprit_costs_fewer_evaluations_than_inc_basic(tmp_path: Path) -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.2})
    result = tune(tmp_path, adaptor)
    assert result.met and result.to_dict()["fallback_ops"] == {"conv1": "bf16"}
    assert result.evaluations < 24  # Intel Neural Compressor 2.6 basic needs 24 here


def test_tune_items_is_checked() -> None:
    with pytest.raises(ValueError, match="tune_items must be one of"):
        AutoStrategy(tune_items="some")
