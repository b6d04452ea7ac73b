"""Quantization-aware training: the PyTorch QAT path, its config and API, and the example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tunekit import config
from tunekit.errors import ConfigError, UserCodeError
from tunekit.space import OpConfig, OpKey
from tunekit.training import TrainingCall

torch = pytest.importorskip("torch")
from torch.ao.quantization import FakeQuantizeBase

from tests.adaptors.conftest import DigitsCNN
from tunekit.adaptors.pytorch import PyTorchAdaptor

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_pytorch"
INT8 = OpConfig("int8", "static", "asym", "per_channel", "minmax")


def fit(model: Any, data: dict[str, Any], steps: int = 3) -> None:
    """A few Adam steps on the digits training images: a real, short training loop."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
    for step in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[step * 64:(step + 1) * 64]),
                                          y[step * 64:(step + 1) * 64]).backward()
        optimizer.step()


def accuracy(model: Any, data: dict[str, Any]) -> float:
    with torch.inference_mode():
        logits = model(torch.from_numpy(data["x_eval"]))
    return float((logits.argmax(1) == torch.from_numpy(data["y_eval"])).float().mean())


def test_qat_space_keeps_static_minmax_and_float_options(digits_model: DigitsCNN) -> None:
    space = PyTorchAdaptor().capabilities(digits_model, "qat")
    for options in space.options.values():
        int8 = [o for o in options if o.precision == "int8"]
        assert int8 and all(o.approach == "static" and o.algorithm == "minmax" for o in int8)
        assert OpConfig("fp32") in options and options[-1].precision != "int8"
    assert space.default().ops[OpKey("conv1", "Conv2d")] == INT8


def test_training_sees_fake_quantizers_only_on_int8_ops_and_yields_int8(
        trained_digits: DigitsCNN, digits: dict[str, Any], calib: list[Any]) -> None:
    adaptor = PyTorchAdaptor()
    config = adaptor.capabilities(trained_digits, "qat").default()
    config = config.with_op(OpKey("fc2", "Linear"), OpConfig("fp32"))
    before = {k: v.clone() for k, v in trained_digits.state_dict().items()}
    seen: list[Any] = []

    def train(model: Any) -> None:
        seen.append(model)
        assert model.training
        fake = {n for n, m in model.named_modules() if isinstance(m, FakeQuantizeBase)}
        assert any(n.startswith("conv1") for n in fake)
        assert not any(n.startswith("fc2") for n in fake)  # fallen back: trains in float
        fit(model, digits)

    candidate = adaptor.train_quantized(trained_digits, config, train, calib)
    assert len(seen) == 1
    assert type(candidate.get_submodule("conv1")).__module__.startswith(
        "torch.ao.nn.intrinsic.quantized")
    assert type(candidate.get_submodule("fc2")) is torch.nn.Linear
    assert accuracy(candidate, digits) > 0.95
    assert all(torch.equal(before[k], v) for k, v in trained_digits.state_dict().items())


def test_qat_candidate_saves_and_reloads_like_a_post_training_one(
        trained_digits: DigitsCNN, digits: dict[str, Any], tmp_path: Path) -> None:
    adaptor = PyTorchAdaptor()
    config = adaptor.capabilities(trained_digits, "qat").default()
    candidate = adaptor.train_quantized(trained_digits, config, lambda m: fit(m, digits), [])
    adaptor.save(candidate, config, tmp_path / "model.pt")
    loaded = adaptor.load(trained_digits, config, tmp_path / "model.pt")
    x = torch.from_numpy(digits["x_eval"][:64])
    with torch.inference_mode():
        assert torch.equal(candidate(x), loaded(x))


def test_training_function_errors_name_the_user_code() -> None:
    def train(model: Any, epochs: int = 1) -> None:
        raise RuntimeError("out of data")

    with pytest.raises(ConfigError, match="quantization.training"):
        TrainingCall(train, {"epoch": 1})
    with pytest.raises(UserCodeError, match="out of data"):
        TrainingCall(train, {"epochs": 1}, "quantization.training.func t:train")(object())


def base_config(**quantization: Any) -> dict[str, Any]:
    return {"model": {"framework": "pytorch", "factory": "m:f"},
            "quantization": quantization, "evaluation": {"eval_func": "m:e"}}


def test_config_requires_a_training_function_for_qat_and_accepts_the_seed_name() -> None:
    with pytest.raises(ConfigError, match=r"quantization\.training\.func.*required"):
        config.parse(base_config(approach="qat"))
    with pytest.raises(ConfigError, match="approach qat only"):
        config.parse(base_config(approach="static", training={"func": "t:train"}))
    spec = config.parse(base_config(approach="quant_aware_training",
                                    training={"func": "t:train", "epochs": 2}))
    assert spec.quantization.approach == "qat"
    assert spec.quantization.training == config.TrainingSpec("t:train", {"epochs": 2})


def test_tune_takes_the_seed_q_func_alias(trained_digits: DigitsCNN, digits: dict[str, Any],
                                          calib: list[Any], eval_data: list[Any],
                                          tmp_path: Path) -> None:
    import tunekit

    calls: list[int] = []

    def q_func(model: Any, steps: int) -> None:
        calls.append(steps)
        fit(model, digits, steps)

    result = tunekit.tune(trained_digits, calib, eval_data=eval_data, metric="topk",
                          q_func=q_func, config={"quantization": {"training": {"steps": 2}}},
                          accuracy_criterion={"relative": 0.05}, objective="size",
                          framework="pytorch", workspace=str(tmp_path / "ws"))
    assert result.met and calls == [2]
    assert result.best_config.counts() == {"int8": 5}


@pytest.mark.slow
def test_example_qat_meets_the_goal_post_training_int8_misses(tmp_path: Path,
                                                             example_env: dict[str, str]) -> None:
    """examples/digits_pytorch/qat.yaml: int8 only, calibration at half intensity."""
    env = example_env

    def tune(workspace: str, *overrides: str) -> dict[str, Any]:
        args = [sys.executable, "-m", "tunekit.cli", "tune", str(EXAMPLE / "qat.yaml"),
                "--workspace", str(tmp_path / workspace), "-q"]
        for item in overrides:
            args += ["--set", item]
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode in (0, 3), done.stderr
        return json.loads((tmp_path / workspace / "result.json").read_text())

    ptq = tune("ptq", "quantization.approach=static", "quantization.training=null",
               "tuning.objective=size")
    trained = tune("qat")
    assert not ptq["met"] and ptq["best_metric"] < 0.9
    assert trained["met"] and trained["precisions"] == {"int8": 5}
    assert trained["best_metric"] >= trained["target"]
