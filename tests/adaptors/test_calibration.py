"""Calibrate once: one pass collects every option's statistics, trials reuse them exactly."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from tunekit.adaptors.pytorch import PyTorchAdaptor  # noqa: E402
from tunekit.adaptors.pytorch import fx_backend  # noqa: E402
from tunekit.space import INT8_ITEMS, QuantConfig, TuningSpace  # noqa: E402


def item_configs(space: TuningSpace) -> list[QuantConfig]:
    """The default config, every op switched to each alternative of each int8 item, and two
    fallbacks: every kind of observer the store must serve."""
    default = space.default()
    configs = [default]
    first = space.ops[0]
    for item in INT8_ITEMS:
        for option in space.alternatives(first, default.ops[first], item):
            configs.append(default.with_ops({op: option for op in space.ops
                                             if option in space.options[op]}))
    configs.append(default.with_op(first, space.option(first, "fp32")))
    configs.append(default.with_op(space.ops[-1], space.option(space.ops[-1], "bf16")))
    return configs


class CountingCalibration:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = fx_backend.calibrate

        def counting(*args: Any, **kwargs: Any) -> int:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(fx_backend, "calibrate", counting)


@pytest.mark.parametrize("make_model", ["digits", pytest.param("resnet", marks=pytest.mark.slow)])
def test_statistics_collected_once_give_identical_candidates(
        make_model: str, digits_model: Any, calib: list, zoo: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if make_model == "digits":
        model, batches = digits_model, calib
        inputs = calib[0][0]
    else:
        torch.manual_seed(0)
        model = zoo.TinyResNet().eval()
        batches = [(torch.rand(4, 3, 16, 16), None) for _ in range(3)]
        inputs = torch.rand(4, 3, 16, 16)
    per_trial, once = PyTorchAdaptor(backend="fx"), PyTorchAdaptor(backend="fx")
    space = per_trial.capabilities(model)
    once.calibrate(model, space, batches)
    counter = CountingCalibration(monkeypatch)
    for config in item_configs(space):
        expected = per_trial.quantize(model, config, batches)
        before = counter.calls
        candidate = once.quantize(model, config, batches)
        assert counter.calls == before, f"{config.summary()} ran the calibration data again"
        with torch.inference_mode():
            assert torch.equal(expected(inputs), candidate(inputs)), config.summary()


def test_statistics_follow_the_model(digits_model: Any, calib: list,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    adaptor = PyTorchAdaptor(backend="fx")
    space = adaptor.capabilities(digits_model)
    adaptor.calibrate(digits_model, space, calib)
    counter = CountingCalibration(monkeypatch)
    with torch.no_grad():
        digits_model.conv1.weight.mul_(2.0)  # edited in place: the cached graph is stale
    adaptor.quantize(digits_model, space.default(), calib)
    assert counter.calls == 1
