"""History in memory: what strategies read after each proposal (the optuna Store is apart)."""

from __future__ import annotations

import dataclasses

import pytest

from tunekit.history import History, Trial, TrialState
from tunekit.space import OpConfig, OpKey, QuantConfig

OP = OpKey("fc", "Linear")
INT8 = QuantConfig({OP: OpConfig("int8", "static", "asym", "per_channel", "minmax")})
FP32 = QuantConfig({OP: OpConfig("fp32")})


def trial(number: int, config: QuantConfig, metric: float | None = 0.9, accepted: bool = False,
          state: TrialState = TrialState.COMPLETE) -> Trial:
    return Trial(number, config, state, metric=metric, accepted=accepted)


def test_record_then_find_and_last() -> None:
    history = History(baseline_metric=0.95)
    first = trial(0, INT8, 0.8)
    history.record(first)
    assert history.last is first and history.find(INT8) is first
    assert history.find(FP32) is None
    assert len(history) == 1 and list(history) == [first] and history.trials == (first,)
    assert history.baseline_metric == 0.95


def test_answer_makes_an_earlier_trial_the_last_without_appending() -> None:
    history = History()
    first, second = trial(0, INT8, 0.8), trial(1, FP32, 0.95, accepted=True)
    history.record(first)
    history.record(second)
    history.answer(first)
    assert history.last is first and len(history) == 2
    assert history.accepted() == [second]


def test_failed_trials_answer_their_config_too() -> None:
    history = History()
    failed = trial(0, INT8, None, state=TrialState.FAILED)
    history.record(failed)
    assert history.last is failed and failed.failed and not failed.accepted
    assert history.find(INT8) is failed  # same config, same failure: not evaluated again


def test_find_answers_with_the_first_trial_of_a_config() -> None:
    history = History()
    first, replayed = trial(0, INT8, 0.8), trial(1, INT8, 0.7)
    history.record(first)
    history.record(replayed)
    assert history.find(INT8) is first and history.last is replayed and len(history) == 2


def test_last_before_any_proposal_is_an_error() -> None:
    with pytest.raises(LookupError, match="no config has been proposed"):
        _ = History().last


def test_trials_are_frozen_and_the_record_is_a_copy() -> None:
    history = History()
    history.record(trial(0, INT8))
    snapshot = history.trials
    history.record(trial(1, FP32))
    assert len(snapshot) == 1  # a tuple taken earlier does not grow
    with pytest.raises(dataclasses.FrozenInstanceError):
        history.last.accepted = True  # type: ignore[misc]
    details = Trial(0, INT8, TrialState.COMPLETE, details={"latency": 1.0}).details
    with pytest.raises(TypeError):
        details["latency"] = 2.0  # type: ignore[index]


def test_trial_attributes_round_trip_through_json_safe_values() -> None:
    original = Trial(3, INT8, TrialState.COMPLETE, metric=0.91, objective=0.5, accepted=True,
                     duration_s=1.23456, details={"performance": 0.002})
    again = Trial.from_attrs(3, original.to_attrs())
    assert again == dataclasses.replace(original, duration_s=1.2346)
    failed = Trial(4, FP32, TrialState.FAILED, error="boom")
    assert Trial.from_attrs(4, failed.to_attrs()) == failed
