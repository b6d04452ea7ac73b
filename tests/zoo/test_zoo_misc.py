"""More model shapes through tunekit.tune (an LSTM, two inputs, dict and tuple outputs, the
README's own snippet, hawq on unlabelled data) and the failures that must stop a tuning early:
a batch the model cannot take (before trial 0) and an eval_func failing every candidate."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tunekit
from tunekit.errors import ConfigError, DataError, TuningFailed

from tests.zoo.zoo_models import (DictOutput, LSTMClassifier, TupleOutput, TwoInputs,
                                  assert_tuned, labelled, predictions, tune)


def _features(count: int, width: int = 16, batch: int = 8) -> list[torch.Tensor]:
    torch.manual_seed(3)
    return [torch.randn(batch, width) for _ in range(count)]


@pytest.mark.slow
def test_lstm_classifier(tmp_path: Path) -> None:
    model = LSTMClassifier().eval()
    torch.manual_seed(4)
    ids = [torch.randint(0, 100, (8, 12)) for _ in range(4)]
    result = tune(model, ids[:2], tmp_path, eval_data=labelled(model, ids),
                  metric={"name": "topk"}, accuracy_criterion={"absolute": 0.1})
    assert_tuned(result, floor=0.85)


def test_two_tensor_inputs_from_flat_tuples(tmp_path: Path) -> None:
    """Calibration yields ``(features, extra)`` (inputs only: forward requires both), evaluation
    ``(features, extra, labels)`` (one more than forward takes: the last is the labels)."""
    model = TwoInputs().eval()
    pairs = list(zip(_features(4), _features(4, width=8)))
    evaluation = [(a, b, predictions(model, (a, b))) for a, b in pairs]
    result = tune(model, pairs[:2], tmp_path, eval_data=evaluation, metric={"name": "topk"})
    assert_tuned(result, floor=0.9)


@pytest.mark.parametrize("kind", [DictOutput, TupleOutput])
def test_dict_and_tuple_outputs(kind: type[nn.Module], tmp_path: Path) -> None:
    model = kind().eval()
    result = tune(model, _features(2), tmp_path, eval_data=labelled(model, _features(4)),
                  metric={"name": "topk"})
    assert_tuned(result, floor=0.9)


def test_readme_snippet_with_a_users_own_module(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "From Python" lines, as written (no framework=), on a user's nn.Module
    (wide enough that int8 beats FP32: a slower int8 model would not be returned)."""

    class MyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024),
                                      nn.ReLU(), nn.Linear(1024, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    model = MyNet().eval()
    x = torch.cat(_features(4, width=256, batch=64))
    dataset = TensorDataset(x, predictions(model, x))
    calib_loader = DataLoader(dataset, batch_size=64)
    eval_loader = DataLoader(dataset, batch_size=64)
    monkeypatch.chdir(tmp_path)
    result = tunekit.tune(model, calib_loader, eval_data=eval_loader, metric={"name": "topk"},
                          accuracy_criterion={"relative": 0.01}, workspace="ws")
    assert result.framework == "pytorch" and result.best_trial is not None
    tuned = tunekit.load("ws", model)
    assert torch.equal(tuned(x).argmax(1), result.best_model(x).argmax(1))


def test_hawq_on_unlabelled_calibration_data(tmp_path: Path) -> None:
    model = DictOutput().eval()
    result = tune(model, _features(2), tmp_path, strategy="hawq",
                  eval_data=labelled(model, _features(4)), metric={"name": "topk"})
    assert_tuned(result, floor=0.9)


def test_a_model_no_adaptor_claims_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^framework: no installed adaptor handles a "
                                          r"builtins.object; pass framework= \(installed "
                                          r"adaptors: .*pytorch") as caught:
        tunekit.tune(object(), [torch.zeros(1)], eval_func=lambda m: 1.0)
    assert "\n" not in str(caught.value)


def test_a_batch_the_model_cannot_take_stops_before_trial_0(tmp_path: Path) -> None:
    model = TwoInputs().eval()
    with pytest.raises(DataError) as caught:
        tune(model, _features(2), tmp_path, eval_func=lambda m: 1.0)
    message = str(caught.value)
    assert "\n" not in message
    for part in ("calibration batch 0 does not fit the model: model(Tensor[8, 16]) raised "
                 "TypeError", "missing 1 required positional argument: 'extra'",
                 "TwoInputs.forward takes (features, extra)", "fix: give every input"):
        assert part in message, message
    assert not (tmp_path / "report.md").exists()  # nothing ran


def test_dict_batches_with_an_unknown_key_name_the_label_key_fix(tmp_path: Path) -> None:
    model = TwoInputs().eval()
    batches = [{"features": a, "extra": b, "target": torch.zeros(8)}
               for a, b in zip(_features(2), _features(2, width=8))]
    with pytest.raises(DataError, match="drop the key 'target' from the batches, or set "
                                        "data.label_key: target"):
        tune(model, batches, tmp_path, eval_func=lambda m: 1.0)
    result = tune(model, batches, tmp_path / "fixed", eval_func=lambda m: 1.0,
                  label_key="target")
    assert result.best_trial is not None and not result.best_trial.failed


def test_an_eval_func_failing_every_candidate_stops_within_3(tmp_path: Path) -> None:
    model = DictOutput().eval()
    why = ("the evaluation service rejected a quantized model: " + "detail " * 30).strip()

    def evaluate(candidate: nn.Module) -> float:
        if candidate is not model:
            raise RuntimeError(why)
        return 1.0

    with pytest.raises(TuningFailed) as caught:
        tune(model, _features(2), tmp_path, eval_func=evaluate, max_trials=20)
    assert why in str(caught.value) and "stopped with no model" in str(caught.value)
    result = json.loads((tmp_path / "result.json").read_text())
    assert 1 <= len(result["failures"]) <= 3 and result["trials"] <= 3
    assert all(why in failure["error"] for failure in result["failures"])
    report = (tmp_path / "report.md").read_text()
    assert why in report and "no model" in report and "goal NOT met" not in report


def test_tune_prints_trial_lines_unless_quiet_or_logging_is_set_up(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = DictOutput().eval()
    for name in ("", "tunekit"):  # as in a plain script (the CLI's tests leave handlers)
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
    tunekit.tune(model, _features(1), eval_func=lambda m: 1.0, workspace=str(tmp_path / "a"),
                 max_trials=1, objective="size")
    assert "trial   0 │" in capsys.readouterr().err
    tunekit.tune(model, _features(1), eval_func=lambda m: 1.0, workspace=str(tmp_path / "b"),
                 max_trials=1, objective="size", quiet=True)
    assert "trial" not in capsys.readouterr().err
