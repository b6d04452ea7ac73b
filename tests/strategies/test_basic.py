"""BasicStrategy: its stages on FakeAdaptor problems with known answers, and the contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tunekit.criterion import AccuracyCriterion
from tunekit.space import OpConfig, OpKey, OpRule, QuantConfig, TuningSpace
from tunekit.strategies.basic import BasicStrategy
from tunekit.strategy import Batch, Strategy, TuneContext, as_batch
from tunekit.testing import DIGITS_OPS, FakeAdaptor, StrategyRun, run_strategy
from tunekit.testing.strategy_contract import StrategyContract

CONV1, CONV2, CONV3, FC1, FC2 = DIGITS_OPS
EXACT = AccuracyCriterion(absolute=0.0)
#: INC 2.6 basic on R1 scale0.5, evaluations including the FP32 baseline (shared/peers/README.md)
INC_BASIC_EVALUATIONS = 24


class TestBasicContract(StrategyContract):
    @pytest.fixture(params=[{}, {"order": "conservative"}, {"tune_items": "all"},
                            {"tune_items": "none"}], ids=["impact", "conservative", "all", "none"])
    def strategy(self, request: pytest.FixtureRequest) -> Strategy:
        return BasicStrategy(**request.param)


def tune(adaptor: FakeAdaptor, criterion: AccuracyCriterion = EXACT, approach: str = "static",
         space: TuningSpace | None = None, **params: str) -> StrategyRun:
    space = space or adaptor.capabilities(None, approach)
    return run_strategy(BasicStrategy(**params), space, adaptor.evaluate, criterion)


def changed(run: StrategyRun, config: QuantConfig) -> dict[str, str]:
    """The ops of ``config`` that differ from the default, as ``{name: str(option)}``."""
    default = run.context.space.default()
    return {op.name: str(c) for op, c in config.ops.items() if default.ops[op] != c}


def final(run: StrategyRun) -> dict[str, str]:
    """What the tuning returns: the accepted config a tuner keeps, as changes from default."""
    assert run.result is not None, f"goal not met: {run.status}"
    return changed(run, run.result.config)


def test_default_config_accepted_takes_one_trial() -> None:
    run = tune(FakeAdaptor(ops=DIGITS_OPS))
    assert run.proposals == (run.context.space.default(),)
    assert run.evaluations == 1 and final(run) == {}


def test_digits_fallback_finds_conv1_in_bf16_with_few_evaluations() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.199})
    run = tune(adaptor)
    assert final(run) == {"conv1": "bf16"}
    # evaluated configs: the single fallbacks are one batch, evaluated up to the first accepted
    assert [changed(run, t.config) for t in run.history] == [
        {},  # default int8
        {"conv1": "int8(static,asym,per_channel,histogram)",  # Conv2d calibration, together
         "conv2": "int8(static,asym,per_channel,histogram)",
         "conv3": "int8(static,asym,per_channel,histogram)"},
        {"conv1": "int8(static,asym,per_channel,percentile)",
         "conv2": "int8(static,asym,per_channel,percentile)",
         "conv3": "int8(static,asym,per_channel,percentile)"},
        {"fc1": "int8(static,asym,per_channel,histogram)",
         "fc2": "int8(static,asym,per_channel,histogram)"},
        {"fc1": "int8(static,asym,per_channel,percentile)",
         "fc2": "int8(static,asym,per_channel,percentile)"},
        {"conv1": "bf16"},  # fallback, top-down: the culprit first
    ]
    # the baseline evaluation counts too, as in INC's figure
    assert adaptor.quantize_calls == run.evaluations + 1 == 7 < INC_BASIC_EVALUATIONS


def test_every_item_value_is_tried_with_tune_items_all() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.199})
    run = tune(adaptor, tune_items="all")
    tried = [changed(run, c) for c in run.proposals]
    assert {"conv1": "int8(static,sym,per_channel,minmax)",
            "conv2": "int8(static,sym,per_channel,minmax)",
            "conv3": "int8(static,sym,per_channel,minmax)"} in tried
    assert final(run) == {"conv1": "bf16"} and run.evaluations == 10


def test_tune_items_none_goes_straight_to_fallback() -> None:
    run = tune(FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2}), tune_items="none")
    assert [changed(run, t.config) for t in run.history] == [{}, {"conv1": "bf16"}]


def test_item_change_that_fixes_an_op_type_avoids_fallback() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2},
                          item_drops={("conv1", "algorithm", "histogram"): 0.0})
    run = tune(adaptor)
    histogram = "int8(static,asym,per_channel,histogram)"
    assert final(run) == {"conv1": histogram, "conv2": histogram, "conv3": histogram}
    assert run.evaluations == 2


def test_item_tuning_keeps_only_improvements_across_op_types() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2, "fc1": 0.1},
                          item_drops={("conv1", "algorithm", "histogram"): 0.0,
                                      ("fc1", "algorithm", "percentile"): 0.0})
    run = tune(adaptor)
    conv = "int8(static,asym,per_channel,histogram)"
    fc = "int8(static,asym,per_channel,percentile)"
    # conv percentile (worse) and fc histogram (equal) are tried but not kept
    assert len(run.proposals) == 5
    assert final(run) == {"conv1": conv, "conv2": conv, "conv3": conv,
                          "fc1": fc, "fc2": fc}


def test_dynamic_approach_is_an_item_move_for_linear_ops() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"fc1": 0.2},
                          item_drops={("fc1", "approach", "dynamic"): 0.0})
    run = tune(adaptor, approach="auto")
    dynamic = "int8(dynamic,per_channel)"
    assert final(run) == {"fc1": dynamic, "fc2": dynamic}


def test_accumulated_fallback_in_impact_order_when_two_ops_must_fall_back() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.05, "conv2": 0.02, "fc2": 0.15})
    run = tune(adaptor, AccuracyCriterion(absolute=0.03), tune_items="none")
    single = [changed(run, c) for c in run.proposals[1:6]]
    assert single == [{op.name: "bf16"} for op in DIGITS_OPS]  # space order
    # fc2 helped most, then conv1: [fc2] is known, so the first new config is fc2 + conv1
    assert run.proposals[6:] == (run.context.space.default().with_ops(
        {FC2: OpConfig("bf16"), CONV1: OpConfig("bf16")}),)
    assert final(run) == {"conv1": "bf16", "fc2": "bf16"}


def test_bf16_is_tried_before_fp32() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2}, bf16_drops={"conv1": 0.2})
    run = tune(adaptor, tune_items="none")
    precisions = [c.precision_of(CONV1) for c in run.proposals]
    assert precisions.index("fp32") > max(i for i, p in enumerate(precisions) if p == "bf16")
    # the fp32 pass reuses the bf16 ranking: conv1 (tied with all, first in space order) first
    assert final(run) == {"conv1": "fp32"}
    assert len(run.proposals) == 1 + 5 + 4 + 1


def test_an_op_rule_without_bf16_falls_back_straight_to_fp32() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2})
    space = adaptor.capabilities(None).restrict([OpRule(name="conv1", allow=("int8", "fp32"))])
    run = tune(adaptor, space=space, tune_items="none")
    assert [changed(run, t.config) for t in run.history] == [{}, {"conv1": "fp32"}]


def test_ops_without_a_fallback_stay_int8() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2, "conv2": 0.2})
    space = adaptor.capabilities(None).restrict([OpRule(name="conv1", allow=("int8",))])
    run = tune(adaptor, AccuracyCriterion(absolute=0.25), space=space, tune_items="none")
    assert all(c.precision_of(CONV1) == "int8" for c in run.proposals)
    assert final(run) == {"conv2": "bf16"}


def test_failed_trials_rank_last_and_do_not_stop_the_search() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2},
                          fails=lambda c: c.precision_of(CONV1) == "bf16")
    run = tune(adaptor, tune_items="none")
    assert sum(t.failed for t in run.history) >= 1
    assert final(run)["conv1"] == "fp32"


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_ranking_follows_the_metric_direction(higher_is_better: bool) -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.05, "conv2": 0.02, "fc2": 0.15})
    sign = 1.0 if higher_is_better else -1.0

    def metric(config: QuantConfig) -> float:  # an error rate when lower is better
        return adaptor.evaluate(config) if higher_is_better else 1.0 - adaptor.evaluate(config)

    criterion = AccuracyCriterion(absolute=0.03, higher_is_better=higher_is_better)
    space = adaptor.capabilities(None)
    run = run_strategy(BasicStrategy(tune_items="none"), space, metric, criterion)
    baseline = run.history.baseline_metric
    assert baseline is not None and sign * (baseline - metric(space.default())) > 0.2
    assert final(run) == {"conv1": "bf16", "fc2": "bf16"} and len(run.proposals) == 7


def test_conservative_starts_from_fp32_and_lowers_op_types() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2})
    run = tune(adaptor, order="conservative")
    # the tuner is asked to go on past accepted configs, so the strategy ends by itself
    assert run.status == "strategy_done"
    fp32 = run.context.space.uniform("fp32")
    steps = [{op.name: c.precision for op, c in config.ops.items() if fp32.ops[op] != c}
             for config in run.proposals]
    int8 = "int8"
    assert steps == [
        {"conv1": int8, "conv2": int8, "conv3": int8},  # Conv2d (3 ops) first: fails
        {"conv1": int8}, {"conv2": int8}, {"conv2": int8, "conv3": int8},  # op by op
        {"conv2": int8, "conv3": int8, "fc1": int8, "fc2": int8},  # Linear: kept
        {"conv1": "bf16", "conv2": int8, "conv3": int8, "fc1": int8, "fc2": int8},
        {"conv1": int8, "conv2": int8, "conv3": int8, "fc1": int8, "fc2": int8},  # polish
    ]
    assert [t.accepted for t in run.history] == [False, False, True, True, True, True, False]
    assert [t.stage for t in run.history] == ["lower_int8"] * 5 + ["lower_bf16", "polish"]


def test_conservative_never_proposes_the_fp32_model() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={op.name: 0.2 for op in DIGITS_OPS},
                          bf16_drops={op.name: 0.2 for op in DIGITS_OPS})
    run = tune(adaptor, order="conservative")
    assert run.context.space.uniform("fp32") not in run.proposals
    assert run.status == "strategy_done" and not any(t.accepted for t in run.history)
    # 2 types × (all at once + each op) in int8, then the same in bf16
    assert len(run.proposals) == 2 * (4 + 3)


def test_single_fallback_batch_stops_at_its_first_accepted_config() -> None:
    # one op out of int8 is 1-minimal: the rest of the batch is not evaluated
    run = tune(FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2}), tune_items="none")
    assert [t.stage for t in run.history] == ["default", "fallback_single"]


class Signals(Strategy):
    """Runs ``inner`` and records each proposal's stage and signals, as the loop resolves them."""

    def __init__(self, *, inner: Strategy) -> None:
        self.inner, self.seen = inner, []

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig | Batch]:
        for proposal in self.inner.propose(ctx):
            batch = as_batch(proposal, self.inner)
            self.seen.append((ctx.notes.stage, batch.needed, batch.final))
            yield proposal


def test_each_proposal_says_what_it_needs_and_whether_its_first_accept_is_final() -> None:
    # two culprits: no single fallback meets the goal, so the accumulated fallback and polish run
    adaptor = FakeAdaptor(ops=DIGITS_OPS, drops={"conv1": 0.2, "fc1": 0.2})
    signals = Signals(inner=BasicStrategy(tune_items="none"))
    run = run_strategy(signals, adaptor.capabilities(None), adaptor.evaluate, EXACT)
    assert run.result is not None
    by_stage = {stage: set() for stage, _, _ in signals.seen}
    for stage, needed, final in signals.seen:
        by_stage[stage].add((needed, final))
    assert by_stage["default"] == {("exact", False)}
    assert by_stage["fallback_single"] == {("exact", True)}  # one op out of int8 is 1-minimal
    assert by_stage["fallback_accumulated"] == {("goal", False)}
    conservative = Signals(inner=BasicStrategy(order="conservative"))
    run_strategy(conservative, adaptor.capabilities(None), adaptor.evaluate, EXACT)
    assert {(needed, final) for _, needed, final in conservative.seen} == {("goal", False)}
    # the signals live in the run, not in the strategy: a new run starts from the defaults
    assert BasicStrategy().metric_needed == "exact"


@pytest.mark.parametrize("params, message", [({"order": "greedy"}, "order must be one of"),
                                             ({"tune_items": False}, "tune_items must be one of")])
def test_invalid_parameters_are_rejected_with_the_choices(params: dict[str, object],
                                                          message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BasicStrategy(**params)  # type: ignore[arg-type]


def test_item_moves_ignore_items_unset_on_one_side() -> None:
    """dynamic int8 has no scheme/algorithm: static ↔ dynamic must still be offered."""
    op = OpKey("fc", "Linear")
    static = OpConfig("int8", "static", "asym", "per_channel", "minmax")
    dynamic = OpConfig("int8", "dynamic", None, "per_channel", None)
    space = TuningSpace({op: (dynamic, static, OpConfig("fp32"))})

    def metric(config: QuantConfig) -> float:
        return 1.0 if config.ops[op] == static else 0.5

    run = run_strategy(BasicStrategy(), space, metric, EXACT, baseline=1.0)
    assert run.history.last.config.ops[op] == static and run.evaluations == 2
