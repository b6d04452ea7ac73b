"""Every fallback strategy ends 1-minimal: culprits at the start, middle and end, several, and
ops that matter only in pairs; checked by brute force on the returned config."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest

from tunekit.criterion import AccuracyCriterion
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace
from tunekit.strategies.amp import AMPStrategy
from tunekit.strategies.auto import AutoStrategy
from tunekit.strategies.basic import BasicStrategy
from tunekit.strategies.conservative import ConservativeStrategy
from tunekit.strategies.hawq import HAWQStrategy
from tunekit.strategies.mse import MSEStrategy
from tunekit.strategies.mse_v2 import MSEv2Strategy
from tunekit.strategies.polish import POLISH, is_one_minimal, polish
from tunekit.strategies.walk import Walker
from tunekit.strategy import Strategy
from tunekit.testing import FakeAdaptor, StrategyRun, run_strategy

#: Eight ops of two types, so the type-wise stages (conservative, amp) have something to do.
OPS = tuple(OpKey(f"op{i}", "Conv2d" if i < 4 else "Linear") for i in range(8))
CRITERION = AccuracyCriterion(relative=0.01)
BASE = 0.99
DROP = 0.2

#: culprit scenarios: ops that lose accuracy alone, and pairs that lose it unless both are float
SCENARIOS: dict[str, tuple[Sequence[str], Sequence[tuple[str, str]]]] = {
    "start": (["op0"], []),
    "middle": (["op4"], []),
    "end": (["op7"], []),
    "several": (["op1", "op5", "op6"], []),
    "pair_only": ([], [("op2", "op6")]),
    "pair_and_single": (["op0"], [("op3", "op7")]),
}


class Problem:
    """Accuracy of a config: ``BASE`` minus ``DROP`` per culprit op in the low precision, and
    per pair with either op in it (so falling back one op of a pair gains nothing)."""

    def __init__(self, low: str, singles: Sequence[str], pairs: Sequence[tuple[str, str]],
                 ops: Sequence[OpKey] = OPS) -> None:
        self.low, self.singles, self.pairs = low, set(singles), list(pairs)
        self.culprits = self.singles | {name for pair in pairs for name in pair}
        self.ops = {op.name: op for op in ops}

    def is_low(self, config: QuantConfig, name: str) -> bool:
        return config.precision_of(self.ops[name]) == self.low

    def accuracy(self, config: QuantConfig) -> float:
        loss = sum(DROP for name in self.singles if self.is_low(config, name))
        loss += sum(DROP for a, b in self.pairs if self.is_low(config, a) or self.is_low(config, b))
        return max(0.0, BASE - loss)

    def sensitivity(self, config: QuantConfig) -> Mapping[OpKey, float]:
        """An output-error proxy: a culprit shows its error where it runs low."""
        return {op: DROP if op.name in self.culprits and config.precision_of(op) == self.low
                else 0.0 for op in config.ops}

    def hessian(self, loss: str | None) -> Mapping[OpKey, float]:
        return {op: 1.0 if name in self.culprits else 0.1 for name, op in self.ops.items()}

    def accepts(self, config: QuantConfig) -> bool:
        return CRITERION.accepts(self.accuracy(config), BASE)


INT8_STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "auto": AutoStrategy, "basic": BasicStrategy, "mse": MSEStrategy, "mse_v2": MSEv2Strategy,
    "hawq": HAWQStrategy, "conservative": ConservativeStrategy,
}


def run(strategy: Strategy, space: TuningSpace, problem: Problem) -> StrategyRun:
    return run_strategy(strategy, space, problem.accuracy, CRITERION, baseline=BASE,
                        stop_on_first_accept=True, sensitivity=problem.sensitivity,
                        hessian=problem.hessian)


def out_of(config: QuantConfig, low: str) -> set[str]:
    return {op.name for op, c in config.ops.items() if c.precision != low}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", INT8_STRATEGIES)
def test_int8_fallback_strategies_end_one_minimal(name: str, scenario: str) -> None:
    problem = Problem("int8", *SCENARIOS[scenario])
    space = FakeAdaptor(ops=OPS).capabilities(None)
    result = run(INT8_STRATEGIES[name](), space, problem).result
    assert result is not None
    assert is_one_minimal(problem.accepts, result.config, dict(space.default().ops))
    # with additive losses the 1-minimal answer is unique: exactly the culprits
    assert out_of(result.config, "int8") == problem.culprits


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_amp_ends_one_minimal_in_bf16(scenario: str) -> None:
    problem = Problem("bf16", *SCENARIOS[scenario])
    space = TuningSpace({op: (OpConfig("bf16"), OpConfig("fp32")) for op in OPS})
    result = run(AMPStrategy(), space, problem).result
    assert result is not None
    assert is_one_minimal(problem.accepts, result.config,
                          {op: OpConfig("bf16") for op in OPS})
    assert out_of(result.config, "bf16") == problem.culprits


def test_polish_costs_far_less_than_one_trial_per_op() -> None:
    # 64 ops all in float, one culprit: halving finds it in about log2(64) trials
    ops = [OpKey(f"op{i:02d}", "Linear") for i in range(64)]
    problem = Problem("int8", ["op37"], [], ops)
    space = FakeAdaptor(ops=ops).capabilities(None)
    default = space.default()
    start = space.uniform("fp32")

    def propose(ctx):  # the polish alone, from the FP32 model (which meets any goal)
        yield from polish(Walker(ctx), start, dict(default.ops))

    strategy = type("PolishOnly", (Strategy,), {"propose": lambda self, ctx: propose(ctx),
                                                "first_accept_is_final": False})()
    done = run_strategy(strategy, space, problem.accuracy, CRITERION, baseline=BASE)
    assert done.result is not None and out_of(done.result.config, "int8") == {"op37"}
    assert done.evaluations <= 2 * 6 + 1
    assert {t.stage for t in done.history} == {POLISH}


@pytest.mark.parametrize("name", ["auto", "basic", "mse"])
def test_an_op_that_fails_static_int8_ends_in_dynamic_int8(name: str) -> None:
    # op6 loses accuracy with static int8 only (its activations calibrate badly); dynamic int8
    # keeps it: the answer keeps it int8 the other way instead of leaving it in float (mse falls
    # it back, then polish finds dynamic; auto and basic find it in their int8-items stage)
    static, dynamic = OpConfig("int8", "static", "sym"), OpConfig("int8", "dynamic")
    space = TuningSpace({op: (static, dynamic, OpConfig("fp32")) for op in OPS})
    culprit = OPS[6]

    def accuracy(config: QuantConfig) -> float:
        return BASE - (DROP if config.ops[culprit] == static else 0.0)

    done = run_strategy(INT8_STRATEGIES[name](), space, accuracy, CRITERION, baseline=BASE,
                        sensitivity=lambda c: {op: DROP * (op == culprit) for op in c.ops},
                        hessian=lambda loss: {op: float(op == culprit) for op in OPS})
    assert done.result is not None
    assert done.result.config.ops[culprit] == dynamic
    assert all(c.precision == "int8" for c in done.result.config.ops.values())
