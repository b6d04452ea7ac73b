"""No float islands in an int8 model: tunekit's all-int8 candidate carries no more
quantize/dequantize nodes than torch.ao's own default int8 of the same model, on several
architectures, and is as accurate."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

import glue_models
from glue_models import ARCHITECTURES, qdq_counts, randomize_batchnorm
from torch import nn

from tunekit.adaptors.pytorch import PyTorchAdaptor, fx_backend
from tunekit.adaptors.pytorch.runtime import quiet_torch_ao
from tunekit.space import QuantConfig, TuningSpace


def torch_default_int8(model: nn.Module, batches: list[Any]) -> Any:
    with quiet_torch_ao():
        return glue_models.torch_default_int8(model, [inputs for inputs, _ in batches])


def tunekit_int8(model: nn.Module, batches: list[Any],
                 config: QuantConfig | None = None) -> tuple[Any, TuningSpace]:
    """tunekit's candidate for ``config`` (default: the space's all-int8 default), calibrated
    once as the tuner does."""
    adaptor = PyTorchAdaptor(backend="fx")
    space = adaptor.capabilities(model)
    adaptor.calibrate(model, space, batches)
    return adaptor.quantize(model, config or space.default(), batches), space


def built(name: str) -> tuple[nn.Module, list[Any]]:
    """An architecture of glue_models at test size (seeded), with two calibration batches."""
    make, shape = ARCHITECTURES[name]
    torch.manual_seed(0)
    model = randomize_batchnorm(make())
    return model, [(torch.randn(8, *shape), None) for _ in range(2)]


def error(candidate: Any, model: nn.Module, x: Any) -> float:
    """Largest output difference from FP32, relative to the largest FP32 output."""
    with torch.inference_mode():
        expected = model(x)
        return float((candidate(x) - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_all_int8_has_no_more_quantize_dequantize_than_torch_default(name: str) -> None:
    """Per architecture: QDQ counts ≤ torch.ao's default, outputs at least as close to FP32
    (with slack for rounding noise). The CNNs carry one quantize (the input) and one dequantize
    (the output), as torch's default does."""
    model, batches = built(name)
    reference = torch_default_int8(model, batches)
    candidate, _ = tunekit_int8(model, batches)
    ours, theirs = qdq_counts(candidate), qdq_counts(reference)
    assert ours[0] <= theirs[0] and ours[1] <= theirs[1], (name, ours, theirs)
    if name != "transformer":
        assert ours == (1, 1), candidate.code
    x = batches[0][0]
    assert error(candidate, model, x) <= max(1.5 * error(reference, model, x), 0.02)


def test_gates_and_activations_run_int8_kernels() -> None:
    """The MobileNetV3-like net's glue: int8 hardswish, hardsigmoid on torch's fixed 1/256
    scale, int8 multiplies (the squeeze-excite gates) and residual adds."""
    model, batches = built("mobilenet_v3_small")
    candidate, _ = tunekit_int8(model, batches)
    code = candidate.code
    assert code.count("quantized.mul(") == 5 and code.count("quantized.add(") == 2
    seen: list[Any] = []
    candidate.get_submodule("blocks.0.block.3.gate").register_forward_hook(
        lambda module, inputs, output: seen.append(output))
    with torch.inference_mode():
        candidate(batches[0][0])
    assert seen[0].is_quantized and seen[0].q_scale() == 1.0 / 256
    assert type(candidate.get_submodule("stem.2")).__name__ == "Hardswish"
    assert type(candidate.get_submodule("stem.2")).__module__.startswith("torch.ao.nn.quantized")


def test_glue_follows_a_fallen_back_op() -> None:
    """The project conv after a squeeze-excite gate falls back: the gate's multiply, read only
    by that conv, stays float (rounding it would only add error in front of the fallback); the
    expand conv falls back: the hardswish after it stays float. Every other gate stays int8."""
    model, batches = built("mobilenet_v3_small")
    adaptor = PyTorchAdaptor(backend="fx")
    space = adaptor.capabilities(model)
    ops = {op.name: op for op in space.ops}
    config = space.default().with_ops({
        ops["blocks.3.block.7"]: space.option(ops["blocks.3.block.7"], "fp32"),
        ops["blocks.4.block.0"]: space.option(ops["blocks.4.block.0"], "fp32")})
    candidate = adaptor.quantize(model, config, batches)
    assert candidate.code.count("quantized.mul(") == 4
    float_hardswish = candidate.get_submodule("blocks.4.block.2")
    assert type(float_hardswish) is nn.Hardswish
    int8_hardswish = candidate.get_submodule("blocks.5.block.2")
    assert type(int8_hardswish).__module__.startswith("torch.ao.nn.quantized")
    assert error(candidate, model, batches[0][0]) < 0.05


@pytest.mark.parametrize("name", ["concat", "mobilenet_v3_small"])
def test_calibrating_once_still_gives_identical_candidates(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concats and pooling share one observer in FX; the calibrate-once store keeps one per
    tensor and rebuilds the sharing, so both paths give bit-identical candidates, and the
    fixed-scale gates need no statistics: no trial runs the calibration data again."""
    model, batches = built(name)
    once, per_trial = PyTorchAdaptor(backend="fx"), PyTorchAdaptor(backend="fx")
    space = once.capabilities(model)
    once.calibrate(model, space, batches)
    minmax = space.default().with_ops(
        {op: space.option(op, "int8", algorithm="minmax") for op in space.ops})
    x = batches[0][0]
    for config in (space.default(), minmax):
        expected = per_trial.quantize(model, config, batches)
        calls: list[int] = []
        monkeypatch.setattr(fx_backend, "calibrate", lambda *args: calls.append(1))
        candidate = once.quantize(model, config, batches)
        monkeypatch.undo()
        assert not calls, f"{config.summary()} ran the calibration data again"
        with torch.inference_mode():
            assert torch.equal(candidate(x), expected(x))


def test_default_int8_is_as_accurate_as_torch_default_on_trained_digits(
        trained_digits: nn.Module, calib: list, eval_data: list) -> None:
    """Top-1 of tunekit's default int8 ≥ torch.ao's default int8 - one eval sample."""
    def top1(model: Any) -> float:
        with torch.inference_mode():
            hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in eval_data)
        return hits / sum(len(y) for _, y in eval_data)

    theirs = top1(torch_default_int8(trained_digits, calib))
    ours = top1(tunekit_int8(trained_digits, calib)[0])
    assert ours >= theirs - 1.0 / 597, (ours, theirs)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "concat"])
def test_saved_glue_reloads_exactly(name: str, tmp_path: Any) -> None:
    """int8 glue (fixed-scale gates, shared concat scales) is rebuilt by ``load`` from the recipe
    and its saved tensors: outputs equal the saved candidate's."""
    model, batches = built(name)
    adaptor = PyTorchAdaptor(backend="fx")
    config = adaptor.capabilities(model).default()
    candidate = adaptor.quantize(model, config, batches)
    path = tmp_path / f"best_model{adaptor.model_suffix}"
    adaptor.save(candidate, config, path)
    loaded = adaptor.load(model, config, path)
    x = batches[1][0]
    with torch.inference_mode():
        assert torch.equal(loaded(x), candidate(x))


class SharedReLUBlock(nn.Module):
    """torchvision's BasicBlock: one ``nn.ReLU`` module called after ``bn1`` and after the add."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.relu = nn.ReLU()

    def forward(self, x: Any) -> Any:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


def test_a_module_called_twice_still_builds_in_fx() -> None:
    """Fusing the first call of a shared ReLU into conv1 used to break conversion of the second
    call (KeyError 'layers.0.conv1.1') and every config was rebuilt eagerly; now the FX build
    succeeds and carries no more quantize/dequantize nodes than torch.ao's default."""
    torch.manual_seed(0)
    model = randomize_batchnorm(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1),
                                              SharedReLUBlock(), SharedReLUBlock()).eval())
    batches = [(torch.randn(4, 3, 16, 16), None) for _ in range(2)]
    candidate, _ = tunekit_int8(model, batches)
    assert isinstance(candidate, torch.fx.GraphModule)
    assert qdq_counts(candidate) <= qdq_counts(torch_default_int8(model, batches))
    assert error(candidate, model, batches[0][0]) < 0.05
