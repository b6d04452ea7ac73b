"""Calibrate once: one pass collects every option's statistics, trials reuse them exactly."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from tunekit.adaptors.pytorch import PyTorchAdaptor
from tunekit.adaptors.pytorch import fx_backend
from tunekit.space import INT8_ITEMS, QuantConfig, TuningSpace


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


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1 << 16])
@pytest.mark.parametrize("q", [0.0001, 0.01, 0.5, 0.99, 0.9999, 1.0])
def test_tail_quantile_equals_torch_quantile(n: int, q: float) -> None:
    from tunekit.adaptors.pytorch.qconfig import tail_quantile

    torch.manual_seed(n)
    for sample in (torch.randn(n), torch.randn(n).clamp(min=0), torch.ones(n)):
        assert torch.equal(tail_quantile(sample, q), torch.quantile(sample, q)), (n, q)


def test_stored_percentile_observers_are_settled(digits_model: Any, calib: list) -> None:
    """The store keeps percentile observers with their range folded in and samples dropped, so a
    trial's copy neither carries the samples nor takes the percentile again."""
    from tunekit.adaptors.pytorch.qconfig import PercentileObserver

    adaptor = PyTorchAdaptor(backend="fx")
    space = adaptor.capabilities(digits_model)
    adaptor.calibrate(digits_model, space, calib)
    store = adaptor._store(digits_model)
    percentile = [o for o in store._observers.values() if isinstance(o, PercentileObserver)]
    assert percentile and all(not o._samples and o._settled for o in percentile)
    fresh = PercentileObserver()
    for batch in calib:
        fresh(batch[0])
    fresh.calculate_qparams()
    assert fresh._ranged == fresh._seen == len(calib)
    fresh.settle()
    with pytest.raises(RuntimeError, match="settled"):
        fresh(calib[0][0])
