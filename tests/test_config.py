from __future__ import annotations

from pathlib import Path

import pytest

from tunekit import config
from tunekit.errors import ConfigError

BASE = {
    "model": {"framework": "pytorch", "factory": "model:build"},
    "quantization": {"calibration": {"data": "data:calib"}},
    "evaluation": {"data": "data:evaluate", "metric": {"name": "topk", "k": 1}},
}


def parse(**sections):
    raw = {**BASE, **sections}
    return config.parse(raw, base_dir=Path("/cfg"))


def error(**sections) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(**sections)
    return info.value


def test_defaults() -> None:
    spec = parse()
    assert spec.tuning.strategy.name == "auto"
    assert spec.tuning.criterion.relative == 0.01 and spec.tuning.criterion.higher_is_better
    assert spec.tuning.timeout == 0 and spec.tuning.max_trials == 100
    assert spec.tuning.seed == 1978
    assert [o.name for o in spec.tuning.objectives] == ["performance"]
    assert spec.quantization.sampling_size == 100
    assert spec.evaluation.metric is not None and spec.evaluation.metric.params == {"k": 1}


def test_unknown_key_names_path_and_suggests() -> None:
    err = error(tuning={"exit_policy": {"max_trial": 5}})
    assert err.path == "tuning.exit_policy.max_trial"
    assert "did you mean 'max_trials'" in str(err) and "valid keys: timeout, max_trials" in str(err)


def test_unknown_top_level_section() -> None:
    err = error(tunning={})
    assert err.path == "tunning" and "'tuning'" in str(err)


def test_wrong_type_names_expected_type() -> None:
    err = error(tuning={"exit_policy": {"max_trials": "ten"}})
    assert err.path == "tuning.exit_policy.max_trials" and "must be int, got str 'ten'" in str(err)


def test_bool_is_not_an_int() -> None:
    assert error(tuning={"random_seed": True}).path == "tuning.random_seed"


def test_unknown_strategy_lists_installed() -> None:
    err = error(tuning={"strategy": {"name": "bayes"}})
    assert err.path == "tuning.strategy.name"
    assert "unknown strategies plugin 'bayes'; installed:" in str(err) and "basic" in str(err)


def test_unknown_framework_and_metric_and_objective() -> None:
    assert error(model={"framework": "mxnet", "path": "m.pt"}).path == "model.framework"
    assert error(evaluation={"data": "d:e", "metric": "top1"}).path == "evaluation.metric"
    assert error(tuning={"objective": ["performance", "speed"]}).path == "tuning.objective[1]"


def test_model_needs_exactly_one_source() -> None:
    assert "exactly one of 'path'" in str(error(model={"framework": "pytorch"}))
    err = error(model={"framework": "pytorch", "path": "a.pt", "factory": "m:f"})
    assert err.path == "model"


def test_reference_must_have_colon() -> None:
    err = error(model={"framework": "pytorch", "factory": "model.build"})
    assert err.path == "model.factory" and "package.module:attribute" in str(err)


def test_criterion_validation() -> None:
    assert error(tuning={"accuracy_criterion": {"relative": 0.01, "absolute": 0.1}}).path == \
        "tuning.accuracy_criterion"
    assert error(tuning={"accuracy_criterion": {"relative": -0.1}}).path == \
        "tuning.accuracy_criterion.relative"
    assert "fraction" in str(error(tuning={"accuracy_criterion": {"relative": 5}}))
    spec = parse(tuning={"accuracy_criterion": {"absolute": 0, "higher_is_better": False}})
    assert spec.tuning.criterion.absolute == 0.0 and not spec.tuning.criterion.higher_is_better
    assert spec.tuning.criterion_direction_given


def test_negative_budget() -> None:
    assert error(tuning={"exit_policy": {"max_trials": 0}}).path == "tuning.exit_policy.max_trials"
    assert error(tuning={"exit_policy": {"timeout": -1}}).path == "tuning.exit_policy.timeout"


def test_op_rules() -> None:
    spec = parse(quantization={"calibration": {"data": "d:c"}, "op_rules": [
        {"type": "Linear", "allow": ["int8", "fp32"]}, {"name": "fc2", "allow": "fp32"},
        {"regex": "layer1\\..*", "granularity": "per_tensor"}]})
    rules = spec.quantization.op_rules
    assert rules[0].allow == ("int8", "fp32") and rules[1].allow == ("fp32",)
    assert rules[2].restrict == {"granularity": ("per_tensor",)}
    bad = error(quantization={"op_rules": [{"type": "Linear", "allow": ["int4"]}]})
    assert bad.path == "quantization.op_rules[0].allow" and "int8, bf16, fp32" in str(bad)
    assert "exactly one" in str(error(quantization={"op_rules": [{"allow": ["fp32"]}]}))
    assert error(quantization={"op_rules": [{"regex": "("}]}).path == \
        "quantization.op_rules[0].regex"


def test_metric_and_eval_func_are_exclusive() -> None:
    err = error(evaluation={"data": "d:e", "metric": "topk", "eval_func": "m:f"})
    assert err.path == "evaluation"


def test_overrides() -> None:
    raw = config.apply_overrides(BASE, ["tuning.exit_policy.max_trials=7",
                                        "tuning.strategy={name: basic, order: conservative}"])
    spec = config.parse(raw)
    assert spec.tuning.max_trials == 7
    assert spec.tuning.strategy.params == {"order": "conservative"}
    with pytest.raises(ConfigError, match="key.path=value"):
        config.apply_overrides(BASE, ["max_trials"])


def test_yaml_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  framework: pytorch\n   path: x\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line 3"):
        config.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        config.load(empty)


def test_load_resolves_paths_relative_to_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: {framework: pytorch, path: model.pt2}\n")
    spec = config.load(path)
    assert spec.model.path == tmp_path.resolve() / "model.pt2"
    assert spec.base_dir == tmp_path.resolve()


def test_config_records_whether_it_names_the_strategy() -> None:
    """Graph optimization's AMP tuning swaps in its own default strategy only when the config
    names none; an explicit ``basic`` stays basic."""
    raw = {"model": {"framework": "pytorch", "factory": "m:f"}}
    assert not config.parse(raw, check_plugins=False).tuning.strategy_given
    named = config.parse({**raw, "tuning": {"strategy": "basic"}}, check_plugins=False)
    assert named.tuning.strategy_given and named.tuning.strategy.name == "basic"
