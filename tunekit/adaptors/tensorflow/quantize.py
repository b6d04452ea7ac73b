"""Build one trial's TFLite model from the calibrated flatbuffer and a config.

Per op, the config decides:

- precision: int8 ops are quantized; every other op is put on ``mlir_quantize``'s deny-list by
  its output tensor, so it runs TFLite's float kernel between a dequantize and a quantize;
- the model's inputs and outputs stay float32 (``input_data_type=float32``). With the
  quantization debugger's models the input is quantized even when the first op is denied, so a
  loss caused by the input quantizer could never be recovered (the Keras R1 ×0.5
  case); here the quantize op moves behind a denied first op;
- algorithm: the range written into the op's input tensors before quantizing;
- granularity: TFLite quantizes weights per channel; a ``per_tensor`` op gets one scale shared by
  all its channels afterwards (weights and the int32 bias re-quantized to it), which is what
  per-tensor quantization computes, on the same kernel.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunekit.adaptors.tensorflow import graph
from tunekit.adaptors.tensorflow.calibration import Calibration
from tunekit.errors import TrialError
from tunekit.space import QuantConfig


def build(calibration: Calibration, ops: Sequence[graph.TFLiteOp], config: QuantConfig) -> bytes:
    """The int8/fp32 flatbuffer of ``config``; raises TrialError if TFLite refuses it."""
    by_key = {op.key: op for op in ops}
    model = graph.read(calibration.blob)
    _write_ranges(model, calibration, ops, config)
    denied = [by_key[key].output for key, c in config.ops.items() if c.precision != "int8"]
    try:
        from tensorflow.lite.python import convert

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            blob = convert.mlir_quantize(graph.write(model), denylisted_nodes=denied or None)
    except Exception as exc:
        raise TrialError(f"TFLite could not quantize {config.summary()} "
                         f"({type(exc).__name__}: {exc})") from exc
    per_tensor = [by_key[k] for k, c in config.ops.items()
                  if c.precision == "int8" and c.granularity == "per_tensor"]
    return share_scales(blob, calibration, per_tensor) if per_tensor else blob


def _write_ranges(model: Any, calibration: Calibration, ops: Sequence[graph.TFLiteOp],
                  config: QuantConfig) -> None:
    """Each activation tensor gets the range of the algorithm of the first op reading it."""
    chosen: dict[int, str] = {}
    for op in ops:
        algorithm = config.ops[op.key].algorithm if op.key in config.ops else None
        for tensor in op.inputs:
            chosen.setdefault(tensor, algorithm or "minmax")
    tensors = model.subgraphs[0].tensors
    for index, algorithm in chosen.items():
        low_high = calibration.ranges.get(algorithm, {}).get(index)
        if low_high is not None and tensors[index].quantization is not None:
            tensors[index].quantization.min = np.array([low_high[0]], np.float32)
            tensors[index].quantization.max = np.array([low_high[1]], np.float32)


def share_scales(blob: bytes, calibration: Calibration,
                 ops: Sequence[graph.TFLiteOp]) -> bytes:
    """Re-quantize the weights of ``ops`` with one scale for all channels (per-tensor)."""
    model = graph.read(blob)
    float_model = graph.read(calibration.blob)
    by_weight = {graph.tensor_name(float_model, op.weight): op for op in ops
                 if op.weight is not None}
    graph_ = model.subgraphs[0]
    for operator in graph_.operators:
        inputs = list(operator.inputs)
        if len(inputs) < 2 or inputs[1] < 0:
            continue
        if graph.tensor_name(model, inputs[1]) not in by_weight:
            continue
        weight, activation = graph_.tensors[inputs[1]], graph_.tensors[inputs[0]]
        if weight.quantization is None or weight.quantization.scale is None:
            continue
        old = np.asarray(weight.quantization.scale, np.float64)
        shared = float(old.max())
        axis = int(weight.quantization.quantizedDimension or 0)
        values = _buffer(model, weight, np.int8)
        shape = [1] * values.ndim
        shape[axis] = -1
        rescaled = np.round(values * (old.reshape(shape) / shared))
        _store(model, weight, np.clip(rescaled, -127, 127).astype(np.int8))
        weight.quantization.scale = np.full_like(old, shared, dtype=np.float32)
        if len(inputs) > 2 and inputs[2] >= 0 and activation.quantization is not None:
            bias = graph_.tensors[inputs[2]]
            input_scale = float(activation.quantization.scale[0])
            quantized = _buffer(model, bias, np.int32).astype(np.float64) * old * input_scale
            _store(model, bias, np.round(quantized / (shared * input_scale)).astype(np.int32))
            bias.quantization.scale = np.full_like(old, shared * input_scale, dtype=np.float32)
    return graph.write(model)


def _buffer(model: Any, tensor: Any, dtype: Any) -> np.ndarray:
    data = np.asarray(model.buffers[tensor.buffer].data, np.uint8)
    return data.view(dtype).reshape(tensor.shape).copy()


def _store(model: Any, tensor: Any, values: np.ndarray) -> None:
    model.buffers[tensor.buffer].data = np.frombuffer(values.tobytes(), np.uint8)

