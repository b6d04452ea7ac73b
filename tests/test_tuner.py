"""The tuning loop with the numpy FakeAdaptor: budget, stopping, failures, resume, outputs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tunekit import config
from tunekit.errors import ConfigError, TrialError, UserCodeError
from tunekit.evaluate import Evaluator
from tunekit.metrics.topk import TopK
from tunekit.strategies.basic import BasicStrategy
from tunekit.testing import DIGITS_OPS, FakeAdaptor, FakeModel, ModelledLatency, fake_data
from tunekit.tuner import Parts, Tuner

DATA = fake_data(500, 100)


def make_spec(tmp_path: Path, **tuning: Any) -> config.TuneSpec:
    raw = {"model": {"framework": "pytorch", "factory": "m:f"},
           "tuning": {"accuracy_criterion": {"absolute": 0.0},
                      "workspace": {"path": str(tmp_path / "ws")}, **tuning}}
    return config.parse(raw, check_plugins=False)


def tuner(spec: config.TuneSpec, adaptor: FakeAdaptor, eval_func=None) -> Tuner:
    evaluator = Evaluator(adaptor, None if eval_func else DATA,
                          None if eval_func else TopK(), eval_func)
    parts = Parts(spec, adaptor, FakeModel(), DATA, evaluator, BasicStrategy(),
                  [("latency", ModelledLatency(), 1.0)])
    return Tuner(parts)


def conv1_culprit(**kw: Any) -> FakeAdaptor:
    return FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.2}, **kw)


def test_finds_the_fallback_and_stops_at_first_accept(tmp_path: Path) -> None:
    result = tuner(make_spec(tmp_path), conv1_culprit()).run()
    assert result.met and result.status == "met"
    assert result.to_dict()["fallback_ops"] == {"conv1": "bf16"}
    assert result.evaluations == len(result.trials) + 1  # + the baseline
    assert result.evaluations < 24  # Intel Neural Compressor 2.6 basic needs 24 here


def test_workspace_files(tmp_path: Path) -> None:
    result = tuner(make_spec(tmp_path), conv1_culprit()).run()
    ws = tmp_path / "ws"
    recipe = json.loads((ws / "best_config.json").read_text())
    assert recipe["met"] and recipe["trial"] == result.best_trial.number
    assert {o["name"]: o["precision"] for o in recipe["ops"]}["conv1"] == "bf16"
    summary = json.loads((ws / "result.json").read_text())
    assert summary["evaluations"] == result.evaluations and summary["target"] == pytest.approx(0.998)
    assert "| trial |" in (ws / "report.md").read_text()
    assert json.loads((ws / "space.json").read_text())["ops"][0]["name"] == "conv1"


def test_max_trials_caps_evaluations_and_result_still_exists(tmp_path: Path) -> None:
    adaptor = conv1_culprit()
    result = tuner(make_spec(tmp_path, exit_policy={"max_trials": 2}), adaptor).run()
    assert not result.met and result.status == "max_trials" and len(result.trials) == 2
    assert adaptor.quantize_calls == 2
    assert result.best_trial is not None and (tmp_path / "ws" / "best_model.json").exists()


def saving(adaptor: FakeAdaptor) -> list[Any]:
    """The configs ``adaptor`` saves as the best model, in order."""
    saved: list[Any] = []
    save = adaptor.save

    def recorded(candidate: Any, config: Any, path: Path) -> None:
        saved.append(config)
        save(candidate, config, path)

    adaptor.save = recorded  # type: ignore[method-assign]
    return saved


def test_only_passing_models_are_saved_as_found_a_failing_best_once_at_the_end(
        tmp_path: Path) -> None:
    adaptor = conv1_culprit()
    saved = saving(adaptor)
    result = tuner(make_spec(tmp_path / "met"), adaptor).run()
    assert result.met and saved and saved[-1] == result.best_trial.config
    accepted = {t.config for t in result.trials if t.accepted}
    assert set(saved) <= accepted  # the failing default (trial 0) was not saved on the way

    adaptor = conv1_culprit()
    saved = saving(adaptor)
    result = tuner(make_spec(tmp_path / "missed", exit_policy={"max_trials": 3}), adaptor).run()
    assert not result.met and saved == [result.best_trial.config]
    assert (tmp_path / "missed" / "ws" / "best_model.json").exists()


def test_timeout_keeps_the_best_passing_model(tmp_path: Path) -> None:
    # with a time budget the tuner does not stop at the first pass; basic itself ends after it
    result = tuner(make_spec(tmp_path, exit_policy={"timeout": 60}), conv1_culprit()).run()
    assert result.met and result.status == "strategy_done"


def test_failing_trial_is_recorded_and_tuning_goes_on(tmp_path: Path) -> None:
    def bf16_conv1_breaks(config) -> bool:
        return config.precision_of(DIGITS_OPS[0]) == "bf16"

    result = tuner(make_spec(tmp_path), conv1_culprit(fails=bf16_conv1_breaks)).run()
    failed = [t for t in result.trials if t.failed]
    assert failed and "TrialError" not in (failed[0].error or "x") and failed[0].error
    assert result.met  # it went on to fp32 for conv1
    assert result.to_dict()["fallback_ops"] == {"conv1": "fp32"}


def test_eval_func_failing_on_a_candidate_fails_only_that_trial(tmp_path: Path) -> None:
    adaptor = conv1_culprit()
    candidates = []

    def evaluate(model: FakeModel) -> float:
        if model.config is not None:
            candidates.append(model.config)
            if len(candidates) == 1:  # the first candidate only (all trials failing would stop)
                raise RuntimeError("out of memory")
        return adaptor.accuracy(model.config)

    result = tuner(make_spec(tmp_path), adaptor, eval_func=evaluate).run()
    assert "RuntimeError: out of memory" in (result.trials[0].error or "")
    assert result.met


def test_baseline_failure_stops_before_any_trial(tmp_path: Path) -> None:
    adaptor = conv1_culprit()

    def evaluate(model: FakeModel) -> float:
        raise KeyError("labels")

    with pytest.raises(UserCodeError, match="baseline.*KeyError"):
        tuner(make_spec(tmp_path), adaptor, eval_func=evaluate).run()
    assert adaptor.quantize_calls == 0


def test_nan_baseline_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserCodeError, match="baseline metric is nan"):
        tuner(make_spec(tmp_path), conv1_culprit(), eval_func=lambda m: float("nan")).run()


def test_resume_replays_without_evaluating(tmp_path: Path) -> None:
    first = tuner(make_spec(tmp_path), conv1_culprit()).run()
    adaptor = conv1_culprit()
    spec = make_spec(tmp_path)
    second = tuner(replace(spec, tuning=replace(spec.tuning, resume=True)), adaptor).run()
    # one predict call: the data contract's check of the first evaluation batch on FP32
    assert second.evaluations == 0 and adaptor.predict_calls == 1
    assert [t.config for t in second.trials] == [t.config for t in first.trials]
    assert second.best_trial.metric == first.best_trial.metric


def test_resume_after_interruption_continues(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, exit_policy={"max_trials": 3})
    partial = tuner(spec, conv1_culprit()).run()
    assert not partial.met
    full_spec = make_spec(tmp_path)
    adaptor = conv1_culprit()
    resumed = tuner(replace(full_spec, tuning=replace(full_spec.tuning, resume=True)), adaptor).run()
    fresh = tuner(make_spec(tmp_path / "other"), conv1_culprit()).run()
    assert resumed.met
    assert [t.config for t in resumed.trials] == [t.config for t in fresh.trials]
    assert resumed.evaluations == len(fresh.trials) - 3  # only the trials not run before


def test_op_rule_naming_a_missing_op(tmp_path: Path) -> None:
    raw = {"model": {"framework": "pytorch", "factory": "m:f"},
           "quantization": {"op_rules": [{"name": "conv9", "allow": ["fp32"]}]},
           "tuning": {"workspace": {"path": str(tmp_path / "ws")}}}
    spec = config.parse(raw, check_plugins=False)
    with pytest.raises(ConfigError, match="quantization.op_rules: op rule for name 'conv9' "
                                          "matches no op; tunable ops are: conv1"):
        tuner(spec, conv1_culprit()).run()


def test_trial_error_type_is_public() -> None:
    assert issubclass(TrialError, Exception)


class DriftingLatency(ModelledLatency):
    """The FP32 model reads slower the earlier it is measured (a process warming up): 10× on the
    first measurement, 5× on the second, then as modelled."""

    drifts = True

    def __init__(self) -> None:
        self.fp32_calls = 0

    def measure(self, adaptor, model, data) -> float:
        if model.config is None:
            self.fp32_calls += 1
            return max(1.0, 15.0 - 5.0 * self.fp32_calls) * super().measure(adaptor, model, data)
        return super().measure(adaptor, model, data)


def test_drifting_objective_is_scored_against_fp32_measured_beside_it(tmp_path: Path) -> None:
    """Each measured candidate is scored against FP32 timed right beside it, and FP32 is not
    timed before the trials (a figure no candidate would use)."""
    adaptor = conv1_culprit()
    objective = DriftingLatency()
    evaluator = Evaluator(adaptor, DATA, TopK())
    parts = Parts(make_spec(tmp_path), adaptor, FakeModel(), DATA, evaluator, BasicStrategy(),
                  [("latency", objective, 1.0)])
    result = Tuner(parts).run()
    measured = [t for t in result.trials if "latency" in t.details]
    assert objective.fp32_calls == len(measured) >= 1  # none before the trials
    for trial in measured:
        assert trial.objective == pytest.approx(trial.details["latency"]
                                                / trial.details["latency.fp32"])
    fp32_now = adaptor.latency(FakeModel())
    assert measured[0].details["latency.fp32"] == pytest.approx(10 * fp32_now)
    # the baseline's figure is the first FP32 measurement, made beside the first candidate
    assert result.baseline["objectives"]["latency"] == measured[0].details["latency.fp32"]
