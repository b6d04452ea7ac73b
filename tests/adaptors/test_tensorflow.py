"""The TensorFlow adaptor on real Keras models and SavedModels (no mocks)."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import tunekit
from tunekit import cli
from tunekit.adaptors.tensorflow import TensorFlowAdaptor, graph
from tunekit.adaptors.tensorflow.bf16 import supported as bf16_supported
from tunekit.adaptors.tensorflow.runtime import TFLiteModel, new_interpreter
from tunekit.errors import ModelError, NotSupportedError, TrialError
from tunekit.space import OpKey, TuningSpace
from scoring import top1

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_keras"
DIGITS_OPS = [OpKey("conv1", "Conv2D"), OpKey("conv2", "Conv2D"), OpKey("conv3", "Conv2D"),
              OpKey("fc1", "Dense"), OpKey("fc2", "Dense"), OpKey("pool2", "MaxPooling2D"),
              OpKey("pool3", "MaxPooling2D")]


@pytest.fixture(scope="module")
def adaptor() -> TensorFlowAdaptor:
    return TensorFlowAdaptor()


def with_ops(space: TuningSpace, base: Any = None, **precisions: str) -> Any:
    """``base`` (default: the space's default) with the named ops moved to these precisions."""
    config = base if base is not None else space.default()
    for op in config.ops:
        if op.name in precisions:
            config = config.with_op(op, space.option(op, precisions[op.name]))
    return config


def op_input_types(candidate: TFLiteModel) -> list[tuple[str, str]]:
    """(op name, type of its first input) in execution order, read from the flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    builtins = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if k.isupper()}
    model = graph.read(candidate.blob)
    tensors = model.subgraphs[0].tensors
    return [(builtins[model.operatorCodes[op.opcodeIndex].builtinCode],
             types[tensors[op.inputs[0]].type]) for op in model.subgraphs[0].operators]


def test_capabilities_name_keras_layers(adaptor: TensorFlowAdaptor, keras_digits: Any) -> None:
    space = adaptor.capabilities(keras_digits)
    assert space.ops == sorted(DIGITS_OPS)
    conv1 = space.options[OpKey("conv1", "Conv2D")]
    assert {o.granularity for o in conv1 if o.precision == "int8"} == {"per_channel",
                                                                       "per_tensor"}
    assert {o.algorithm for o in conv1 if o.precision == "int8"} == {"minmax", "percentile"}
    assert all(o.precision != "bf16" for o in conv1)  # bf16 is opt-in
    pool = space.options[OpKey("pool2", "MaxPooling2D")]
    assert {o.granularity for o in pool} == {None}
    with pytest.raises(NotSupportedError, match="static"):
        adaptor.capabilities(keras_digits, "dynamic")


def test_int8_ops_run_int8_kernels_with_float_io(adaptor: TensorFlowAdaptor, keras_digits: Any,
                                                 keras_calib: list) -> None:
    space = adaptor.capabilities(keras_digits)
    candidate = adaptor.quantize(keras_digits, space.default(), keras_calib)
    ops = op_input_types(candidate)
    assert ops[0] == ("QUANTIZE", "float32") and ops[-1][0] == "DEQUANTIZE"
    assert all(dtype == "int8" for name, dtype in ops
               if name in ("CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D"))
    # conv1 back in float: the model input is no longer quantized, conv1 reads float32
    fallback = adaptor.quantize(keras_digits, with_ops(space, conv1="fp32"), keras_calib)
    assert op_input_types(fallback)[:2] == [("CONV_2D", "float32"), ("QUANTIZE", "float32")]


def test_a_speedup_names_the_runtimes_it_compares(adaptor: TensorFlowAdaptor, keras_digits: Any,
                                                  keras_calib: list) -> None:
    """TFLite int8 against FP32 in TensorFlow: the runtime switch is part of the speedup."""
    from tunekit.speed import runtimes

    candidate = adaptor.quantize(keras_digits, adaptor.capabilities(keras_digits).default(),
                                 keras_calib)
    assert adaptor.runtime(candidate) == "TFLite"
    assert runtimes(adaptor, candidate, keras_digits) == "TFLite vs FP32 in TensorFlow (Keras)"
    assert runtimes(adaptor, keras_digits, keras_digits) is None


def test_per_tensor_shares_one_weight_scale(adaptor: TensorFlowAdaptor, keras_digits: Any,
                                            keras_calib: list, keras_eval: list) -> None:
    space = adaptor.capabilities(keras_digits)
    fc1 = OpKey("fc1", "Dense")
    config = space.default().with_op(fc1, space.option(fc1, "int8", granularity="per_tensor"))
    candidate = adaptor.quantize(keras_digits, config, keras_calib)
    interpreter = new_interpreter(candidate.blob, [(1, 16, 16, 1)])
    scales = [d["quantization_parameters"]["scales"] for d in interpreter.get_tensor_details()
              if "fc1" in d["name"] and d["name"].endswith("MatMul") and d["dtype"] == np.int8]
    assert len(scales) == 1 and len(scales[0]) == 128 and np.ptp(scales[0]) == 0
    assert top1(adaptor, candidate, keras_eval) > 0.97


@pytest.mark.slow
def test_half_scale_calibration_is_recovered_by_conv1_fallback(
        adaptor: TensorFlowAdaptor, keras_digits: Any, digits: dict, keras_calib: list,
        keras_eval: list) -> None:
    """The DESIGN trap: the loss is in the input quantizer, so only a float input recovers."""
    half = [(x * 0.5, y) for x, y in keras_calib]
    space = adaptor.capabilities(keras_digits)
    baseline = top1(adaptor, keras_digits, keras_eval)
    assert top1(adaptor, adaptor.quantize(keras_digits, space.default(), half), keras_eval) < 0.9
    recovered = adaptor.quantize(keras_digits, with_ops(space, conv1="fp32"), half)
    assert top1(adaptor, recovered, keras_eval) >= baseline - 0.005


@pytest.mark.skipif(not bf16_supported(), reason="no native bf16 on this CPU")
def test_bf16_layers_compute_in_bfloat16(keras_digits: Any, keras_calib: list,
                                         keras_eval: list) -> None:
    adaptor = TensorFlowAdaptor(bf16=True)
    space = adaptor.capabilities(keras_digits)
    config = with_ops(space, space.uniform("fp32"), conv2="bf16", fc1="bf16")
    candidate = adaptor.quantize(keras_digits, config, keras_calib)
    assert candidate.keras.get_layer("conv2").compute_dtype == "bfloat16"
    assert candidate.keras.get_layer("conv1").compute_dtype == "float32"
    assert abs(top1(adaptor, candidate, keras_eval) - top1(adaptor, keras_digits, keras_eval)) < 0.01
    with pytest.raises(TrialError, match="mix int8 and bf16"):
        adaptor.quantize(keras_digits, with_ops(space, conv2="bf16"), keras_calib)


def test_names_and_model_kinds_are_checked(keras_digits: Any) -> None:
    with pytest.raises(ModelError, match="no output named 'logits'.*outputs are: fc2"):
        TensorFlowAdaptor(output="logits").capabilities(keras_digits)
    with pytest.raises(ModelError, match="no input named 'image'.*inputs are: x"):
        TensorFlowAdaptor(inputs=["image"]).capabilities(keras_digits)
    torch = pytest.importorskip("torch")
    with pytest.raises(ModelError, match="PyTorch model.*framework: pytorch"):
        TensorFlowAdaptor().capabilities(torch.nn.Linear(2, 2))


def test_saved_model_directory_tunes_in_int8(tmp_path: Path, keras_digits: Any,
                                             keras_calib: list, keras_eval: list) -> None:
    keras_digits.export(str(tmp_path / "saved"), verbose=False)
    adaptor = TensorFlowAdaptor()
    model = adaptor.load_model(tmp_path / "saved")
    space = adaptor.capabilities(model)
    assert {op.type for op in space.ops} == {"Conv2D", "Dense", "MaxPooling2D"}
    candidate = adaptor.quantize(model, space.default(), keras_calib)
    assert abs(top1(adaptor, candidate, keras_eval) - top1(adaptor, model, keras_eval)) < 0.02
    with pytest.raises(ModelError, match="no signature 'predict'.*serve"):
        TensorFlowAdaptor(signature="predict").capabilities(model)
    with pytest.raises(ModelError, match="not a TensorFlow model file"):
        adaptor.load_model(tmp_path / "saved" / "saved_model.pb")


def test_an_unseen_keras_model_tunes_through_the_public_api(tmp_path: Path) -> None:
    """Depthwise and 1×1 convs, a residual Add, a Concatenate, average pooling, two inputs."""
    layers = tf.keras.layers
    image, extra = tf.keras.Input((12, 12, 3), name="image"), tf.keras.Input((4,), name="extra")
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(image)
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = layers.Conv2D(8, 1, name="pw")(y)
    x = layers.Add(name="residual")([x, y])
    x = layers.AveragePooling2D(2, name="avg")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Concatenate(name="join")([x, layers.Dense(8, name="side")(extra)])
    model = tf.keras.Model([image, extra], layers.Dense(3, name="head")(x))
    rng = np.random.default_rng(0)
    batches = [((rng.random((16, 12, 12, 3), np.float32), rng.random((16, 4), np.float32)),
                rng.integers(0, 3, 16)) for _ in range(4)]
    result = tunekit.tune(model, batches, eval_data=batches, metric={"name": "topk"},
                          accuracy_criterion={"absolute": 1.0}, objective="size",
                          workspace=str(tmp_path / "ws"))
    types = {op.type for op in result.best_config.ops}
    assert {"Conv2D", "DepthwiseConv2D", "Add", "Concatenate", "Dense"} <= types
    assert result.met and isinstance(result.best_model, TFLiteModel)
    reloaded = tunekit.load(tmp_path / "ws", model)
    adaptor = TensorFlowAdaptor()
    assert np.array_equal(next(adaptor.predict(reloaded, batches))[0],
                          next(adaptor.predict(result.best_model, batches))[0])


def accuracy_of(model: Any) -> float:
    from tunekit.references import resolve

    return top1(TensorFlowAdaptor(), model, resolve("data:eval_loader", EXAMPLE, "test")())


@pytest.mark.slow
@pytest.mark.parametrize("config", ["config.yaml", "fallback.yaml"])
def test_keras_example_tunes_from_the_cli_and_reloads(config: str, tmp_path: Path,
                                                      capsys: Any) -> None:
    pytest.importorskip("sklearn")
    workspace = tmp_path / "ws"
    code = cli.main(["tune", str(EXAMPLE / config), "--workspace", str(workspace)])
    assert code == cli.EXIT_MET, capsys.readouterr().err
    result = json.loads((workspace / "result.json").read_text())
    assert result["met"]
    if config == "fallback.yaml":
        assert set(result["fallback_ops"]) == {"conv1"}
        assert result["best_metric"] >= result["baseline"] - 0.002
    else:
        assert result["precisions"] == {"int8": 7}
    assert (workspace / "best_model" / "model.tflite").is_file()
    reloaded = tunekit.load(workspace, trust=True)  # the FP32 model from the recorded factory
    assert accuracy_of(reloaded) == pytest.approx(result["best_metric"], abs=0)


def test_entry_point_loads_the_adaptor() -> None:
    [entry] = [e for e in importlib.metadata.entry_points(group="tunekit.adaptors")
               if e.name == "tensorflow"]
    assert entry.load() is TensorFlowAdaptor
