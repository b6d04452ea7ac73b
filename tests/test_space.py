"""The tuning space: configs as frozen values, user rules, and what strategies query."""

from __future__ import annotations

import json

import pytest

from tunekit.space import (INT8_ITEMS, OpConfig, OpKey, OpRule, QuantConfig, TuningSpace,
                           int8_options)

CONV1, CONV2, FC = OpKey("conv1", "Conv2d"), OpKey("conv2", "Conv2d"), OpKey("fc", "Linear")
MINMAX = OpConfig("int8", "static", "asym", "per_channel", "minmax")
HISTOGRAM = OpConfig("int8", "static", "asym", "per_channel", "histogram")
SYM = OpConfig("int8", "static", "sym", "per_channel", "minmax")
DYNAMIC = OpConfig("int8", "dynamic", None, "per_channel", None)
BF16, FP32 = OpConfig("bf16"), OpConfig("fp32")


@pytest.fixture
def space() -> TuningSpace:
    # given out of order on purpose: the space orders ops by name
    return TuningSpace({FC: (MINMAX, DYNAMIC, FP32),
                        CONV2: (MINMAX, HISTOGRAM, BF16, FP32),
                        CONV1: (MINMAX, HISTOGRAM, SYM, BF16, FP32)})


def test_ops_are_in_name_order_and_default_takes_each_first_option(space: TuningSpace) -> None:
    assert space.ops == [CONV1, CONV2, FC]
    assert dict(space.default().ops) == {CONV1: MINMAX, CONV2: MINMAX, FC: MINMAX}


def test_uniform_falls_back_to_the_default_where_the_precision_is_missing(
        space: TuningSpace) -> None:
    assert dict(space.uniform("bf16").ops) == {CONV1: BF16, CONV2: BF16, FC: MINMAX}
    assert space.uniform("fp32").counts() == {"fp32": 3}


def test_precisions_fallbacks_and_option_lookup(space: TuningSpace) -> None:
    assert space.precisions(CONV1) == ["int8", "bf16", "fp32"]
    assert space.fallbacks(CONV1) == [BF16, FP32]
    assert space.fallbacks(FC) == [FP32]
    assert space.option(CONV1, "int8", algorithm="histogram") == HISTOGRAM
    with pytest.raises(KeyError, match="conv2<Conv2d> has no int8 option with.*sym"):
        space.option(CONV2, "int8", scheme="sym")


def test_alternatives_change_one_item_and_keep_the_others(space: TuningSpace) -> None:
    assert space.alternatives(CONV1, MINMAX, "algorithm") == [HISTOGRAM]
    assert space.alternatives(CONV1, MINMAX, "scheme") == [SYM]
    assert space.alternatives(CONV1, HISTOGRAM, "scheme") == []  # no sym+histogram option
    assert space.alternatives(CONV2, MINMAX, "granularity") == []
    assert space.alternatives(CONV1, BF16, "algorithm") == []


def test_contains_checks_ops_and_options(space: TuningSpace) -> None:
    assert space.contains(space.default())
    assert not space.contains(space.default().with_op(CONV2, SYM))  # conv2 has no sym option
    assert not space.contains(QuantConfig({CONV1: MINMAX, CONV2: MINMAX}))  # fc missing


def test_iter_configs_yields_size_distinct_configs(space: TuningSpace) -> None:
    configs = list(space.iter_configs())
    assert space.size() == 5 * 4 * 3 == len(configs) == len(set(configs))
    assert configs[0] == space.default() and all(space.contains(c) for c in configs)


def test_an_op_without_options_is_rejected() -> None:
    with pytest.raises(ValueError, match="has no options"):
        TuningSpace({CONV1: ()})


def test_space_survives_a_json_round_trip(space: TuningSpace) -> None:
    again = TuningSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space and again.options[CONV1] == space.options[CONV1]


# --------------------------------------------------------------------------- rules


def test_rule_priority_is_type_then_regex_then_name(space: TuningSpace) -> None:
    rules = [OpRule(name="conv1", allow=("fp32",)),  # most specific, listed first
             OpRule(regex="conv.*", allow=("int8", "bf16")),
             OpRule(type="Conv2d", allow=("fp32",)),
             OpRule(type="Linear", allow=("int8",))]
    restricted = space.restrict(rules)
    assert restricted.options[CONV1] == (FP32,)  # name beats regex and type
    assert restricted.options[CONV2] == (MINMAX, HISTOGRAM, BF16)  # regex beats type
    assert restricted.options[FC] == (MINMAX, DYNAMIC)


def test_rules_restrict_int8_items(space: TuningSpace) -> None:
    restricted = space.restrict([OpRule(type="Conv2d", restrict={"algorithm": ("histogram",)})])
    assert restricted.options[CONV1] == (HISTOGRAM, BF16, FP32)
    assert restricted.default().ops[CONV1] == HISTOGRAM
    assert restricted.options[FC] == space.options[FC]


def test_a_name_rule_matching_no_op_lists_the_ops(space: TuningSpace) -> None:
    with pytest.raises(ValueError, match=r"name 'conv3' matches no op.*conv1, conv2, fc"):
        space.restrict([OpRule(name="conv3", allow=("fp32",))])


def test_a_rule_leaving_an_op_without_options_names_what_it_supports(space: TuningSpace) -> None:
    with pytest.raises(ValueError, match=r"leaves fc<Linear> without options.*fp32"):
        space.restrict([OpRule(type="Linear", allow=("bf16",))])


def test_unmatched_reports_type_and_regex_rules_too(space: TuningSpace) -> None:
    rules = [OpRule(type="LayerNorm", allow=("fp32",)), OpRule(regex="fc", allow=("fp32",)),
             OpRule(regex="attn.*", allow=("fp32",))]
    assert space.unmatched(rules) == [rules[0], rules[2]]


def test_a_rule_needs_exactly_one_selector() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        OpRule(type="Conv2d", name="conv1")
    with pytest.raises(ValueError, match="exactly one"):
        OpRule(allow=("fp32",))


# --------------------------------------------------------------------------- values


def test_float_op_configs_take_no_int8_items() -> None:
    with pytest.raises(ValueError, match="bf16 takes no int8 parameters"):
        OpConfig("bf16", scheme="sym")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        OpConfig("fp16")
    assert OpConfig("fp32") == FP32 and hash(OpConfig("fp32")) == hash(FP32)


def test_op_config_dict_round_trip_and_unknown_keys() -> None:
    assert OpConfig.from_dict(DYNAMIC.to_dict()) == DYNAMIC
    assert DYNAMIC.to_dict() == {"precision": "int8", "approach": "dynamic",
                                 "granularity": "per_channel"}
    with pytest.raises(ValueError, match=r"unknown op config keys \['bits'\]"):
        OpConfig.from_dict({"precision": "int8", "bits": 4})


def test_quant_configs_are_equal_and_hash_alike_whatever_the_op_order() -> None:
    a = QuantConfig({CONV1: MINMAX, FC: BF16})
    b = QuantConfig({FC: BF16, CONV1: MINMAX})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != QuantConfig({CONV1: MINMAX, FC: FP32})
    assert a.to_json() == b.to_json()


def test_quant_config_is_immutable_and_with_op_copies() -> None:
    a = QuantConfig({CONV1: MINMAX, FC: MINMAX})
    with pytest.raises(TypeError):
        a.ops[CONV1] = FP32  # type: ignore[index]
    b = a.with_op(CONV1, FP32)
    assert a.ops[CONV1] == MINMAX and b.ops[CONV1] == FP32
    with pytest.raises(KeyError, match="conv2<Conv2d> is not an op"):
        a.with_op(CONV2, FP32)


def test_quant_config_json_round_trip() -> None:
    config = QuantConfig({CONV1: HISTOGRAM, CONV2: BF16, FC: DYNAMIC})
    assert QuantConfig.from_json(config.to_json()) == config


def test_quant_config_counts_and_summary() -> None:
    config = QuantConfig({CONV1: BF16, CONV2: MINMAX, FC: MINMAX})
    reference = QuantConfig({CONV1: MINMAX, CONV2: MINMAX, FC: MINMAX})
    assert config.counts() == {"bf16": 1, "int8": 2}
    assert config.ops_in("int8") == [CONV2, FC]
    assert config.summary(reference) == "int8×2 bf16×1 [conv1→bf16]"


def test_int8_options_put_the_first_value_of_every_item_first() -> None:
    options = int8_options(["static", "dynamic"], ["asym", "sym"], ["per_channel", "per_tensor"],
                           ["minmax", "histogram"])
    assert options[0] == MINMAX
    assert len(options) == 2 * 2 * 2 + 2  # static: scheme × granularity × algorithm; dynamic: 2
    assert {o.approach for o in options} == set(INT8_ITEMS["approach"])
    assert [o for o in options if o.approach == "dynamic"] == [
        DYNAMIC, OpConfig("int8", "dynamic", None, "per_tensor", None)]


def test_alternatives_offer_dynamic_int8_for_a_static_op(space: TuningSpace) -> None:
    assert space.alternatives(FC, MINMAX, "approach") == [DYNAMIC]


def test_spaces_and_rules_are_hashable(space: TuningSpace) -> None:
    assert hash(space) == hash(TuningSpace.from_dict(space.to_dict()))
    assert hash(OpRule(type="Conv2d", restrict={"scheme": ("sym",)})) == \
        hash(OpRule(type="Conv2d", restrict={"scheme": ("sym",)}))
