"""Tunable ops of a TFLite flatbuffer, and the Keras layers they come from.

TFLite is the int8 runtime (docs/tensorflow-backend.md says why), so the tuning space is read
from the model TFLite actually builds: one tunable op per CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, BATCH_MATMUL, ADD, MUL, CONCATENATION and pooling op, after TFLite's own fusions
(BatchNorm and ReLU folded into the conv, as oneDNN would). Ops are named after the Keras layer
they come from when the model is a Keras model (``conv1``, type ``Conv2D``), so reports and
``op_rules`` speak the user's language; SavedModel ops are named from their graph path.

TFLite tensor names carry per-trace counters (``model_1/conv1_2/...``), so names are matched to
layers with the counter stripped, and an op is found again in another conversion by its name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from tunekit.space import OpKey

_B = schema.BuiltinOperator
#: TFLite builtin → (op type for SavedModels, Keras classes it comes from).
TUNABLE: Mapping[int, tuple[str, tuple[str, ...]]] = {
    _B.CONV_2D: ("Conv2D", ("Conv2D", "Conv1D")),
    _B.DEPTHWISE_CONV_2D: ("DepthwiseConv2D", ("DepthwiseConv2D", "Conv2D")),
    _B.FULLY_CONNECTED: ("Dense", ("Dense", "EinsumDense")),
    _B.BATCH_MATMUL: ("MatMul", ("Dot", "EinsumDense", "Dense")),
    _B.ADD: ("Add", ("Add",)),
    _B.MUL: ("Multiply", ("Multiply",)),
    _B.CONCATENATION: ("Concatenate", ("Concatenate",)),
    _B.AVERAGE_POOL_2D: ("AveragePooling2D", ("AveragePooling2D",)),
    _B.MAX_POOL_2D: ("MaxPooling2D", ("MaxPooling2D",)),
    _B.MEAN: ("GlobalAveragePooling2D", ("GlobalAveragePooling2D", "GlobalAveragePooling1D")),
}
#: Op types whose weights are quantized (they get the per-channel/per-tensor choice).
WEIGHTED = frozenset({_B.CONV_2D, _B.DEPTHWISE_CONV_2D, _B.FULLY_CONNECTED})
_COUNTER = re.compile(r"_\d+$")


@dataclass(frozen=True)
class TFLiteOp:
    """One tunable op of a flatbuffer: where it is and which tensors are its own."""

    key: OpKey
    index: int              # position in subgraph 0's operator list
    builtin: int
    output: str             # name of its first output tensor: what deny-lists name
    inputs: tuple[int, ...]  # activation (non-constant) input tensor indices
    weight: int | None      # constant weight tensor index of a weighted op
    bias: int | None


def read(blob: bytes) -> Any:
    """The flatbuffer as a mutable object tree (``schema.ModelT``)."""
    return flatbuffer_utils.read_model_from_bytearray(bytearray(blob))


def write(model: Any) -> bytes:
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tensor_name(model: Any, index: int) -> str:
    name = model.subgraphs[0].tensors[index].name
    return name.decode() if isinstance(name, bytes) else str(name)


def is_constant(model: Any, index: int) -> bool:
    tensor = model.subgraphs[0].tensors[index]
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


def find_ops(model: Any, layers: Mapping[str, str] | None = None,
             sizes: Mapping[str, int] | None = None) -> list[TFLiteOp]:
    """The tunable ops of ``model`` in execution order.

    ``layers`` maps Keras layer names to class names; without it (SavedModel) ops are named
    from their tensor paths. ``sizes`` (:func:`kernel_sizes`) settles names a trace counter
    made ambiguous: ``dense_1`` is layer ``dense_1`` or the first trace of layer ``dense``.
    """
    graph = model.subgraphs[0]
    found: list[TFLiteOp] = []
    seen: dict[str, int] = {}
    for index, op in enumerate(graph.operators):
        builtin = model.operatorCodes[op.opcodeIndex].builtinCode
        builtin = max(builtin, model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
        if builtin not in TUNABLE:
            continue
        inputs = [i for i in op.inputs if i >= 0]
        constants = [i for i in inputs if is_constant(model, i)]
        activations = tuple(i for i in inputs if i not in constants)
        if not activations:
            continue  # folded constant arithmetic, nothing to quantize at run time
        weighted = builtin in WEIGHTED and len(inputs) > 1 and inputs[1] in constants
        weight = inputs[1] if weighted else None
        bias = inputs[2] if weighted and len(inputs) > 2 and inputs[2] in constants else None
        names = [tensor_name(model, i) for i in ([weight] if weight is not None else [])]
        names += [tensor_name(model, i) for i in op.outputs]
        size = _size(model, weight) if weight is not None else None
        name, op_type = _identify(names, builtin, layers, sizes, size)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}#{seen[name]}"
        found.append(TFLiteOp(OpKey(name, op_type), index, builtin,
                              tensor_name(model, op.outputs[0]), activations, weight, bias))
    return found


def _identify(names: Sequence[str], builtin: int, layers: Mapping[str, str] | None,
              sizes: Mapping[str, int] | None = None, size: int | None = None
              ) -> tuple[str, str]:
    """The (name, type) of an op from its tensor names: the Keras layer of a matching class
    if one appears in them (one whose kernel has the op's weight count first), else any Keras
    layer, else the graph path."""
    default_type, classes = TUNABLE[builtin]
    if layers:
        found = [layer for part in _components(names)
                 for layer in dict.fromkeys((part, _COUNTER.sub("", part))) if layer in layers]
        for wanted in (lambda c: c in classes, lambda c: True):
            matching = [layer for layer in found if wanted(layers[layer])]
            sized = [layer for layer in matching if size and (sizes or {}).get(layer) == size]
            if sized or matching:
                layer = (sized or matching)[0]
                return layer, layers[layer]
    first = names[0].split(";")[0]
    path = [_COUNTER.sub("", p) for p in first.split("/")]
    return "/".join(path[:-1] or path), default_type


def _components(names: Iterable[str]) -> Iterable[str]:
    for name in names:
        for segment in name.split(";"):
            yield from reversed(segment.split("/")[:-1] or [segment])


def _size(model: Any, index: int) -> int:
    return int(np.prod(model.subgraphs[0].tensors[index].shape))


def kernel_sizes(keras_model: Any) -> dict[str, int]:
    """Layer name → number of elements of its first weight (its kernel), for the layers that
    have weights: what tells two layers apart when their traced names collide."""
    sizes: dict[str, int] = {}

    def walk(model: Any) -> None:
        for layer in getattr(model, "layers", []):
            weights = getattr(layer, "weights", None)
            if weights and layer.name not in sizes:
                sizes[layer.name] = int(np.prod(weights[0].shape))
            walk(layer)

    walk(keras_model)
    return sizes


def keras_layers(keras_model: Any) -> dict[str, str]:
    """Layer name → class name for every layer of a Keras model, nested models included."""
    layers: dict[str, str] = {}

    def walk(model: Any) -> None:
        for layer in getattr(model, "layers", []):
            layers.setdefault(layer.name, type(layer).__name__)
            walk(layer)

    walk(keras_model)
    return layers
