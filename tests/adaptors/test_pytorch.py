"""The PyTorch adaptor on real small torch models (no mocks)."""

from __future__ import annotations

import copy
import importlib.metadata
import inspect as pyinspect
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tunekit.adaptors.pytorch import PyTorchAdaptor
from tunekit.adaptors.pytorch.bf16 import BF16Module
from tunekit.adaptors.pytorch.capabilities import bf16_supported
from tunekit.adaptors.pytorch.qconfig import PercentileObserver
from tunekit.errors import ConfigError, DataError, ModelError, TrialError
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace
from scoring import top1

DEFAULT_INT8 = OpConfig("int8", "static", "asym", "per_channel", "histogram")
DIGITS_OPS = [OpKey("conv1", "Conv2d"), OpKey("conv2", "Conv2d"), OpKey("conv3", "Conv2d"),
              OpKey("fc1", "Linear"), OpKey("fc2", "Linear")]


def is_int8(module: nn.Module) -> bool:
    """A module converted to a real int8 kernel (static or dynamic)."""
    return type(module).__module__.startswith(("torch.ao.nn.quantized",
                                               "torch.ao.nn.intrinsic.quantized"))


def outputs_of(model: nn.Module, x: Any) -> Any:
    with torch.inference_mode():
        return model(x)


def close(got: Any, expected: Any, tolerance: float) -> bool:
    """Largest difference within ``tolerance`` × the largest expected magnitude."""
    return float((got - expected).abs().max()) < tolerance * float(expected.abs().max())


def with_ops(space: TuningSpace, **precisions: str) -> QuantConfig:
    """The default config with the named ops moved to the given precisions."""
    config = space.default()
    for op in config.ops:
        if op.name in precisions:
            config = config.with_op(op, space.option(op, precisions[op.name]))
    return config


# -- capabilities --------------------------------------------------------------------------------
def test_capabilities_of_the_digits_cnn(digits_model: nn.Module) -> None:
    space = PyTorchAdaptor().capabilities(digits_model)
    assert space.ops == sorted(DIGITS_OPS)
    for op in space.ops:
        options = space.options[op]
        assert options[0] == DEFAULT_INT8
        assert OpConfig("fp32") in options and options[-1].precision != "int8"
        assert (OpConfig("bf16") in options) == bf16_supported()
        int8 = [o for o in options if o.precision == "int8"]
        assert len(int8) == 12 and {o.approach for o in int8} == {"static"}
        assert {o.algorithm for o in int8} == {"minmax", "histogram", "percentile"}


def test_dynamic_and_auto_approaches(digits_model: nn.Module) -> None:
    adaptor = PyTorchAdaptor()
    dynamic = adaptor.capabilities(digits_model, "dynamic")
    conv1, fc1 = OpKey("conv1", "Conv2d"), OpKey("fc1", "Linear")
    # conv1 sums 1 channel × 3×3 = 9 products: too short for bf16 to win, so fp32 comes first
    assert dynamic.precisions(conv1) == (["fp32", "bf16"] if bf16_supported() else ["fp32"])
    assert dynamic.options[fc1][0] == OpConfig("int8", "dynamic", None, "per_channel", None)
    assert [o.granularity for o in dynamic.options[fc1] if o.precision == "int8"] == [
        "per_channel", "per_tensor"]
    auto = adaptor.capabilities(digits_model, "auto")
    approaches = [o.approach for o in auto.options[fc1] if o.precision == "int8"]
    assert approaches[0] == "static" and approaches[-1] == "dynamic"
    assert {o.approach for o in auto.options[conv1] if o.precision == "int8"} == {"static"}
    with pytest.raises(ConfigError, match="approach"):
        adaptor.capabilities(digits_model, "no_such_approach")


def test_recurrent_ops_get_dynamic_int8_even_under_static(zoo: Any) -> None:
    space = PyTorchAdaptor().capabilities(zoo.Recurrent().eval())
    assert {op.type for op in space.ops} == {"LSTM", "GRU", "Linear"}
    assert space.options[OpKey("lstm", "LSTM")][0].approach == "dynamic"
    assert space.options[OpKey("head", "Linear")][0] == DEFAULT_INT8


def test_capabilities_of_an_untraceable_model(zoo: Any) -> None:
    space = PyTorchAdaptor().capabilities(zoo.Untraceable().eval())
    assert space.ops == [OpKey("conv", "Conv2d"), OpKey("fc", "Linear")]


def test_model_without_quantizable_ops_is_explained() -> None:
    with pytest.raises(Exception, match="no quantizable modules"):
        PyTorchAdaptor().capabilities(nn.Sequential(nn.ReLU()))


# -- quantize (FX) -------------------------------------------------------------------------------
def test_all_int8_uses_int8_kernels_and_stays_close(digits_model: nn.Module, calib: list) -> None:
    adaptor = PyTorchAdaptor()
    before = copy.deepcopy(digits_model.state_dict())
    candidate = adaptor.quantize(digits_model, adaptor.capabilities(digits_model).default(), calib)
    for op in DIGITS_OPS:
        assert is_int8(candidate.get_submodule(op.name)), op
    assert candidate._tunekit_backend == "fx"
    x = calib[0][0]
    assert close(outputs_of(candidate, x), outputs_of(digits_model, x), 0.05)
    # the original is untouched: same modules, same tensors
    assert all(type(m).__module__.startswith("torch.nn") for m in digits_model.modules()
               if m is not digits_model)
    for key, value in digits_model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_fallback_changes_exactly_those_ops(digits_model: nn.Module, calib: list) -> None:
    adaptor = PyTorchAdaptor()
    space = adaptor.capabilities(digits_model)
    float_precision = "bf16" if bf16_supported() else "fp32"
    config = with_ops(space, conv1="fp32", fc1=float_precision)
    candidate = adaptor.quantize(digits_model, config, calib)
    conv1 = candidate.get_submodule("conv1")
    assert not is_int8(conv1) and not isinstance(conv1, BF16Module)
    assert isinstance(conv1[0], nn.Conv2d)  # fused conv(+BN folded)+ReLU, still float
    fc1 = candidate.get_submodule("fc1")
    assert isinstance(fc1, BF16Module) if bf16_supported() else not is_int8(fc1)
    for name in ("conv2", "conv3", "fc2"):
        assert is_int8(candidate.get_submodule(name)), name
    x = calib[0][0]
    assert outputs_of(candidate, x).dtype == torch.float32


@pytest.mark.slow
def test_half_scale_calibration_needs_conv1_to_fall_back(trained_digits: nn.Module,
                                                         digits: dict, eval_data: list) -> None:
    """R1's fallback case: calibration at half intensity clips conv1's input quantizer."""
    adaptor = PyTorchAdaptor()
    half = [(torch.from_numpy(digits["x_calib"]) * 0.5, torch.from_numpy(digits["y_calib"]))]
    space = adaptor.capabilities(trained_digits)
    assert top1(adaptor, trained_digits, eval_data) > 0.99
    assert top1(adaptor, adaptor.quantize(trained_digits, space.default(), half), eval_data) < 0.9
    recovered = adaptor.quantize(trained_digits, with_ops(space, conv1="fp32"), half)
    assert top1(adaptor, recovered, eval_data) > 0.99
    if bf16_supported():
        bf16 = adaptor.quantize(trained_digits, with_ops(space, conv1="bf16"), half)
        assert top1(adaptor, bf16, eval_data) > 0.99


@pytest.mark.parametrize("item,value", [("algorithm", "minmax"), ("algorithm", "percentile"),
                                        ("scheme", "sym"), ("granularity", "per_tensor")])
def test_every_int8_item_builds(digits_model: nn.Module, calib: list, item: str,
                                value: str) -> None:
    adaptor = PyTorchAdaptor()
    space = adaptor.capabilities(digits_model)
    config = QuantConfig({op: space.option(op, "int8", **{item: value}) for op in space.ops})
    candidate = adaptor.quantize(digits_model, config, calib)
    x = calib[0][0]
    assert close(outputs_of(candidate, x), outputs_of(digits_model, x), 0.1)


def test_residual_net_runs_with_int8_adds_and_with_fallbacks(zoo: Any) -> None:
    """The stem's max-pool feeds a conv and a residual add (an FX lowering trap); adds fed only
    by int8 ops run in int8, and one fallen-back conv keeps its add in float."""
    torch.manual_seed(0)
    model, x = zoo.TinyResNet().eval(), torch.randn(4, 3, 16, 16)
    adaptor = PyTorchAdaptor()
    space = adaptor.capabilities(model)
    all_int8 = adaptor.quantize(model, space.default(), [x])
    assert "quantized.add_relu" in all_int8.code
    expected = outputs_of(model, x)
    assert close(outputs_of(all_int8, x), expected, 0.1)
    fallback = adaptor.quantize(model, with_ops(space, **{"layer1.0.conv2": "fp32"}), [x])
    int8_adds = all_int8.code.count("quantized.add_relu")
    assert int8_adds == 2 and fallback.code.count("quantized.add_relu") == int8_adds - 1
    assert outputs_of(fallback, x).shape == expected.shape
    plain = PyTorchAdaptor(int8_followers=False).quantize(model, space.default(), [x])
    assert "quantized.add" not in plain.code and outputs_of(plain, x).shape == expected.shape


class Glue(nn.Module):
    """Concat, mul and adds between convs; one add reads the model input."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Any) -> Any:
        y = torch.cat([self.a(x), nn.functional.relu(self.b(x))], 1)
        z = self.c(y) * self.a(x) + x[:, :1]
        z = torch.relu(z + self.a(x))
        return self.fc(z.mean((2, 3)))


@pytest.mark.filterwarnings("error:All inputs of this cat operator")
def test_glue_between_int8_ops() -> None:
    """A concat fed by a conv that is called three times stays float: that conv's one int8
    module has one output scale, which cannot also be the concat's. The mul of two int8 convs
    and the add of an int8 conv to the (float) stream run in int8; the add that reads the model
    input does not."""
    torch.manual_seed(0)
    model, x = Glue().eval(), torch.randn(4, 3, 8, 8)
    adaptor = PyTorchAdaptor()
    candidate = adaptor.quantize(model, adaptor.capabilities(model).default(), [x])
    code = candidate.code
    assert "quantized.mul" in code and "quantized.add_relu" in code
    assert "quantized.cat" not in code and code.count("quantized.add") == 1
    assert close(outputs_of(candidate, x), outputs_of(model, x), 0.1)


def test_dynamic_int8_for_linear_and_recurrent_ops(zoo: Any) -> None:
    torch.manual_seed(0)
    model, x = zoo.Recurrent().eval(), torch.randn(3, 5, 6)
    adaptor = PyTorchAdaptor()
    config = adaptor.capabilities(model, "dynamic").default()
    candidate = adaptor.quantize(model, config, [])  # dynamic int8 needs no calibration data
    for name in ("lstm", "gru", "head"):
        assert type(candidate.get_submodule(name)).__module__.startswith(
            "torch.ao.nn.quantized.dynamic"), name
    assert float((outputs_of(candidate, x) - outputs_of(model, x)).abs().max()) < 0.05


def test_static_op_fed_by_a_dynamic_op_gets_int8_kernels() -> None:
    """Under approach 'auto' a strategy may mix them; FX alone would leave the static op as a
    float 'reference' module."""
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4)).eval(), torch.randn(16, 8)
    adaptor = PyTorchAdaptor()
    space = adaptor.capabilities(model, "auto")
    first, second = space.ops
    config = QuantConfig({first: space.option(first, "int8", approach="dynamic"),
                          second: space.option(second, "int8", approach="static")})
    candidate = adaptor.quantize(model, config, [x])
    assert all(is_int8(candidate.get_submodule(n)) for n in ("0", "1"))
    assert "Reference" not in repr(candidate)
    assert float((outputs_of(candidate, x) - outputs_of(model, x)).abs().max()) < 0.05


def test_static_int8_without_calibration_data_is_a_data_error(digits_model: nn.Module) -> None:
    adaptor = PyTorchAdaptor()
    with pytest.raises(DataError, match="calibration"):
        adaptor.quantize(digits_model, adaptor.capabilities(digits_model).default(), [])


def test_failure_inside_torch_is_a_trial_error_naming_the_config() -> None:
    class OneDimensional(nn.Module):  # a quantized Linear refuses 1-D inputs
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 3)

        def forward(self, x: Any) -> Any:
            return self.fc(x[0])

    model = OneDimensional().eval()
    adaptor = PyTorchAdaptor()
    with pytest.raises(TrialError, match=r"int8\(static,asym,per_channel,histogram\): fc"):
        adaptor.quantize(model, adaptor.capabilities(model).default(), [torch.randn(2, 8)])


# -- eager fallback ------------------------------------------------------------------------------
def test_untraceable_model_is_quantized_eagerly(zoo: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    model, x = zoo.Untraceable().eval(), torch.rand(8, 1, 8, 8)
    adaptor = PyTorchAdaptor()
    space = adaptor.capabilities(model)
    with caplog.at_level(logging.WARNING):
        candidate = adaptor.quantize(model, space.default(), [x])
    assert "eager backend" in caplog.text and "trace" in caplog.text
    assert candidate._tunekit_backend == "eager"
    assert is_int8(candidate.get_submodule("conv.module"))
    assert is_int8(candidate.get_submodule("fc.module"))
    expected = outputs_of(model, x)
    assert close(outputs_of(candidate, x), expected, 0.05)
    mixed = adaptor.quantize(model, with_ops(space, conv="fp32"), [x])
    assert isinstance(mixed.get_submodule("conv"), nn.Conv2d)
    with pytest.raises(ModelError, match="cannot trace"):
        PyTorchAdaptor(backend="fx").quantize(model, space.default(), [x])


# -- save / load ---------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
@pytest.mark.parametrize("case", ["fx-mixed", "fx-residual", "eager", "dynamic-recurrent"])
def test_save_then_load_reproduces_outputs_exactly(case: str, zoo: Any, digits_model: nn.Module,
                                                   calib: list, tmp_path: Path) -> None:
    torch.manual_seed(0)
    if case == "fx-mixed":
        model, data = digits_model, calib
        space = PyTorchAdaptor().capabilities(model)
        config = with_ops(space, conv1="fp32", fc1="bf16" if bf16_supported() else "fp32")
        conv2 = OpKey("conv2", "Conv2d")
        config = config.with_op(conv2, space.option(conv2, "int8", algorithm="percentile"))
    elif case == "fx-residual":  # int8 adds keep their own quantization parameters
        model, data = zoo.TinyResNet().eval(), [torch.randn(4, 3, 16, 16)]
        config = PyTorchAdaptor().capabilities(model).default()
    elif case == "eager":
        model, data = zoo.Untraceable().eval(), [torch.rand(8, 1, 8, 8)]
        config = PyTorchAdaptor().capabilities(model).default()
    else:
        model, data = zoo.Recurrent().eval(), [torch.randn(3, 5, 6)]
        config = PyTorchAdaptor().capabilities(model).default()
    adaptor = PyTorchAdaptor()
    candidate = adaptor.quantize(model, config, data)
    path = tmp_path / f"best_model{adaptor.model_suffix}"
    adaptor.save(candidate, config, path)
    payload = torch.load(path, weights_only=True)  # safe format: no pickled classes
    assert payload["backend"] == candidate._tunekit_backend
    loaded = adaptor.load(model, config, path)
    x = data[0][0] if isinstance(data[0], tuple) else data[0]
    assert torch.equal(outputs_of(loaded, x), outputs_of(candidate, x))
    with pytest.raises(ModelError, match="another config"):
        adaptor.load(model, QuantConfig({op: OpConfig("fp32") for op in config.ops}), path)


def test_model_size_shrinks_with_int8(digits_model: nn.Module, calib: list) -> None:
    adaptor = PyTorchAdaptor()
    candidate = adaptor.quantize(digits_model, adaptor.capabilities(digits_model).default(), calib)
    assert adaptor.model_size(candidate) < 0.4 * adaptor.model_size(digits_model)


# -- load_model ----------------------------------------------------------------------------------
def test_load_model_formats_and_errors(digits_model: nn.Module, tmp_path: Path) -> None:
    adaptor, x = PyTorchAdaptor(), torch.rand(2, 1, 16, 16)
    expected = outputs_of(digits_model, x)
    exported = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(digits_model, (x,)), str(exported))
    assert torch.allclose(outputs_of(adaptor.load_model(exported), x), expected, atol=1e-5)
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(digits_model, x), str(scripted))
    assert torch.allclose(outputs_of(adaptor.load_model(scripted), x), expected, atol=1e-5)

    with pytest.raises(ModelError, match="missing.pt"):
        adaptor.load_model(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file at all")
    with pytest.raises(ModelError, match="corrupt.pt"):
        adaptor.load_model(corrupt)
    weights = tmp_path / "weights.pt"
    torch.save(digits_model.state_dict(), weights)
    with pytest.raises(ModelError, match="weights.pt.*state_dict.*model.factory"):
        adaptor.load_model(weights)


def test_pickled_module_needs_an_explicit_opt_in(tmp_path: Path) -> None:
    pickled = tmp_path / "pickled.pt"
    torch.save(nn.Sequential(nn.Linear(4, 2)), pickled)
    with pytest.raises(ModelError, match="pickled.pt.*allow_pickle"):
        PyTorchAdaptor().load_model(pickled)
    assert isinstance(PyTorchAdaptor(allow_pickle=True).load_model(pickled), nn.Sequential)


# -- running and inspecting ----------------------------------------------------------------------
class TwoInputs(nn.Module):
    """forward(a, b) returning a dict or a tuple, as HuggingFace-style models do."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.fc, self.kind = nn.Linear(4, 3), kind

    def forward(self, a: Any, b: Any | None = None) -> Any:
        y = self.fc(a if b is None else a + b)
        return {"loss": y.sum(), "logits": y} if self.kind == "dict" else (y, y.sum())


@pytest.mark.parametrize("kind", ["dict", "tuple"])
def test_quantize_calibrates_with_tuple_and_dict_inputs(kind: str) -> None:
    torch.manual_seed(0)
    model, a, b = TwoInputs(kind).eval(), torch.randn(16, 4), torch.randn(16, 4)
    adaptor = PyTorchAdaptor()
    calib = [((a, b), None)] if kind == "tuple" else [{"a": a, "b": b}]
    candidate = adaptor.quantize(model, adaptor.capabilities(model).default(), calib)
    assert is_int8(candidate.get_submodule("fc"))
    [(out, _)] = adaptor.predict(candidate, calib)
    assert np.abs(out - model.fc(a + b).detach().numpy()).max() < 0.05


def test_predict_accepts_tuple_and_dict_outputs_and_inputs() -> None:
    adaptor, a, b = PyTorchAdaptor(), torch.randn(5, 4), torch.randn(5, 4)
    for kind in ("dict", "tuple"):
        model = TwoInputs(kind).eval()
        expected = model.fc(a + b).detach().numpy()
        [(out, labels)] = adaptor.predict(model, [((a, b), torch.arange(5))])
        assert np.allclose(out, expected) and labels.tolist() == list(range(5))
        [(out, labels)] = adaptor.predict(model, [{"a": a, "b": b}])
        assert np.allclose(out, expected) and labels is None
    assert adaptor.run_batch(model, (a, b))[0].shape == (5, 3)


def test_predict_restores_training_mode(digits_model: nn.Module) -> None:
    digits_model.train()
    list(PyTorchAdaptor().predict(digits_model, [torch.rand(2, 1, 16, 16)]))
    assert digits_model.training and digits_model.bn1.training


@pytest.mark.parametrize("model_name", ["DigitsCNN", "Untraceable"])
def test_inspect_pairs_fp32_and_candidate_outputs(model_name: str, zoo: Any, calib: list) -> None:
    torch.manual_seed(0)
    model = getattr(zoo, model_name)().eval()
    data = calib if model_name == "DigitsCNN" else [torch.rand(8, 1, 8, 8)]
    adaptor = PyTorchAdaptor()
    space = adaptor.capabilities(model)
    candidate = adaptor.quantize(model, space.default(), data)
    pairs = adaptor.inspect(model, candidate, space.ops, data)
    assert set(pairs) == set(space.ops)
    for op, (fp32, int8) in pairs.items():
        assert fp32.shape == int8.shape and fp32.dtype == int8.dtype == np.float32, op
        assert np.abs(fp32 - int8).max() < 0.2 * np.abs(fp32).max() + 1e-6, op


# -- pieces --------------------------------------------------------------------------------------
def test_percentile_observer_clips_rare_outliers() -> None:
    values = torch.linspace(-1, 1, 100_000)
    values[0] = 50.0
    observer = PercentileObserver(qscheme=torch.per_tensor_symmetric)
    observer(values)
    scale, _ = observer.calculate_qparams()
    assert float(observer.max_val) < 1.01 and float(scale) < 2.0 / 255 * 1.05
    minmax = torch.ao.quantization.MinMaxObserver(qscheme=torch.per_tensor_symmetric)
    minmax(values)
    assert float(minmax.calculate_qparams()[0]) > 10 * float(scale)


def test_constructor_only_stores_keyword_parameters() -> None:
    signature = pyinspect.signature(PyTorchAdaptor)
    assert all(p.kind is p.KEYWORD_ONLY for p in signature.parameters.values())
    adaptor = PyTorchAdaptor(backend="eager", calibration_batches=2, allow_pickle=True)
    assert vars(adaptor) == {"backend": "eager", "calibration_batches": 2, "allow_pickle": True,
                             "int8_followers": True, "pt2e_min_params": 1_000_000}


def test_entry_point_loads_the_adaptor() -> None:
    [entry] = [e for e in importlib.metadata.entry_points(group="tunekit.adaptors")
               if e.name == "pytorch"]
    assert entry.load() is PyTorchAdaptor and PyTorchAdaptor.model_suffix == ".pt"


def test_bf16_comes_first_only_where_its_dot_products_are_long_enough() -> None:
    from torch import nn

    from tunekit.adaptors.pytorch.capabilities import BF16_MIN_REDUCTION, op_options

    def floats(module: nn.Module) -> list[str]:
        return [o.precision for o in op_options(module, "static", True) if o.precision != "int8"]

    assert floats(nn.Conv2d(1, 16, 3)) == ["fp32", "bf16"]  # 9 products per output
    assert floats(nn.Conv2d(16, 32, 3)) == ["bf16", "fp32"]  # 144
    assert floats(nn.Conv2d(32, 32, 3, groups=32)) == ["fp32", "bf16"]  # depthwise: 9
    assert floats(nn.Linear(BF16_MIN_REDUCTION, 8)) == ["bf16", "fp32"]
    assert floats(nn.Linear(BF16_MIN_REDUCTION - 1, 8)) == ["fp32", "bf16"]
    assert [o.precision for o in op_options(nn.Conv2d(1, 16, 3), "static", False)][-1] == "fp32"
