"""What of an ONNX graph is tunable, and which tensor each op's int8 settings decide.

ONNX Runtime quantizes per tensor: a tensor between two ops gets one scale, one zero point and one
integer type, shared by its producer and its consumers. tunekit tunes per op, so every activation
tensor is given to one op: walking the graph in order, an int8 op claims its inputs and outputs
not claimed yet, and an op ONNX Runtime quantizes only when its input is (pooling, reshapes,
activations) hands its input's owner on to its outputs. The first op to claim a tensor decides its
calibration algorithm, scheme and integer type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnx.numpy_helper

from tunekit.errors import ModelError
from tunekit.space import OpConfig, OpKey

#: Ops with weights or heavy arithmetic: each one is a tunable op.
COMPUTE = ("Conv", "ConvTranspose", "Gemm", "MatMul")
#: Ops that join two activations (residual adds, concatenations): tunable when no input is a
#: constant (an Add of a constant is a bias or part of an activation formula: it stays float).
JOINS = ("Add", "Concat")
#: Ops that look up rows of a float table by integer indices (embeddings): their output is data.
LOOKUPS = ("Gather", "GatherElements", "GatherND")
#: Float element types (tensors of any other type are never quantized).
FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
          onnx.TensorProto.DOUBLE)
#: Ops ONNX Runtime quantizes only when their input already is: they follow their neighbours.
FOLLOWERS = ("Relu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "Reshape", "Transpose",
             "Squeeze", "Unsqueeze", "Flatten", "Resize", "Slice", "Pad", "Split")
#: Ops ONNX Runtime's dynamic quantization supports (weights int8, activations quantized on the fly).
DYNAMIC = ("Conv", "MatMul")
#: Ops offered dynamic int8: those, and Gemm, which :mod:`.gemm` rewrites as MatMul (+ Add).
DYNAMIC_TUNABLE = (*DYNAMIC, "Gemm")
#: Ops ``approach: auto`` offers dynamic int8 to: those with a fast dynamic kernel in ONNX
#: Runtime (DynamicQuantizeMatMul/MatMulInteger). Its dynamic Conv (ConvInteger) ran 0.15× FP32
#: on the digits CNN, and ONNX Runtime advises static int8 for CNNs: in ``auto`` it would only
#: spend trials (a strategy that accepts the first passing config could even stop there, then
#: keep FP32 as faster). ``approach: dynamic`` still offers it.
AUTO_DYNAMIC = ("Gemm", "MatMul")
#: A constant this large or larger (or infinite) makes a tensor an additive mask: HuggingFace
#: encoders add the float32 minimum, -3.4e38, to the attention scores at padded positions. An
#: Add of a mask stays float: int8's 256 levels spread over ±3.4e38 round every real score to one
#: value (a random-init BERT tolerates that, a trained one does not), and the search would spend
#: trials finding each layer's mask Add a culprit.
MASK_MAGNITUDE = 1e30
#: Ops a mask is built with (from the attention mask input and the constant): it stays a mask
#: through them.
MASK_OPS = ("Where", "Mul", "Sub", "Cast", "Unsqueeze", "Squeeze", "Expand", "Reshape", "Slice",
            "Transpose", "Identity", "Neg", "Min", "Max", "Concat", "Tile", "Gather")
#: Weight input index and per-channel axis of each weighted op type (negative: from the end; a
#: MatMul's output columns are its weight's last axis, also for a batched, 3-D weight).
WEIGHT_AXIS: Mapping[str, tuple[int, int]] = {"Conv": (1, 0), "ConvTranspose": (1, 1),
                                              "MatMul": (1, -1)}


@dataclass(frozen=True)
class Op:
    """One tunable node: its key, the node, and its weight initializer and axis (if any)."""

    key: OpKey
    node: onnx.NodeProto
    weight: str | None
    axis: int


def named(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` itself when every node has a unique name, else a copy whose unnamed nodes are
    named ``<OpType>_<index>`` (ONNX Runtime leaves nodes float by name)."""
    names = [n.name for n in model.graph.node]
    if all(names) and len(set(names)) == len(names):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    seen: set[str] = set()
    for i, node in enumerate(copy.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    return copy


def _not_float(model: onnx.ModelProto) -> set[str]:
    """Tensors whose type is not float (shape arithmetic: int64 Concat/Add; token ids, masks):
    the graph inputs by their declared type, the rest as ONNX's shape inference types them
    (none where it cannot type the graph)."""
    declared = {v.name for v in model.graph.input
                if v.type.tensor_type.elem_type not in (0, *FLOATS)}
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # custom ops and the like: every join stays tunable
        return declared
    return declared | {v.name for v in (*graph.value_info, *graph.output, *graph.input)
                       if v.type.tensor_type.elem_type not in (0, *FLOATS)}


def _not_activations(model: onnx.ModelProto) -> set[str]:
    """Tensors computed from constants and integer or boolean tensors alone: constants, shape
    arithmetic, and an attention mask turned into a float bias (``Where(mask, 0, -inf)``,
    ``(1 - mask) * finfo.min``). Adding such a bias is no residual join: quantized, its range
    of ±3.4e38 or ±inf leaves no step for the scores it is added to (a BERT's attention read
    all equal, or the tensor could not be calibrated). An embedding lookup (a Gather from a
    float table by token ids) and a compute op's output are activations, the data's values;
    a lookup by constant indices (BERT's token-type and position embeddings) is a constant."""
    constants = {i.name for i in model.graph.initializer}
    derived = constants | _not_float(model)
    for node in model.graph.node:
        inputs = [i for i in node.input if i]  # a Constant node has none
        if all(i in constants for i in inputs):
            constants.update(node.output)
            derived.update(node.output)
        elif node.op_type not in COMPUTE + LOOKUPS and all(i in derived for i in inputs):
            derived.update(node.output)
    return derived


def _huge(tensor: onnx.TensorProto | onnx.AttributeProto) -> bool:
    """Whether an initializer or a Constant node's value attribute holds a mask value."""
    if isinstance(tensor, onnx.AttributeProto):
        if tensor.name not in ("value", "value_float", "value_floats"):
            return False
        values = onnx.numpy_helper.to_array(tensor.t) if tensor.name == "value" \
            else np.array([tensor.f] if tensor.name == "value_float" else tensor.floats)
    else:
        values = onnx.numpy_helper.to_array(tensor)
    return values.dtype.kind == "f" and values.size > 0 and bool(
        (~np.isfinite(values) | (np.abs(values) >= MASK_MAGNITUDE)).any())


def masks(model: onnx.ModelProto) -> set[str]:
    """The tensors that carry an additive mask (:data:`MASK_MAGNITUDE`): huge constants, and
    what :data:`MASK_OPS` compute from them."""
    found = {i.name for i in model.graph.initializer if _huge(i)}
    for node in model.graph.node:
        if node.op_type == "Constant" and any(_huge(a) for a in node.attribute):
            found.update(node.output)
        elif node.op_type in MASK_OPS and any(i in found for i in node.input):
            found.update(node.output)
    return found


def find_ops(model: onnx.ModelProto) -> dict[OpKey, Op]:
    """The tunable nodes of ``model`` (see :data:`COMPUTE` and :data:`JOINS`), in graph order;
    a join is not tunable when an input is not an activation (:func:`_not_activations`: a bias,
    an attention mask's bias, shape arithmetic), or a mask (:func:`masks`: a huge constant's
    mask, even one built from a float input), or when its output is not float."""
    initializers = {i.name: len(i.dims) for i in model.graph.initializer}
    fixed = _not_activations(model) | masks(model)
    ops: dict[OpKey, Op] = {}
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type in JOINS and (any(i in fixed for i in node.input)
                                      or node.output[0] in fixed):
            continue
        if node.op_type not in COMPUTE + JOINS:
            continue
        weight, axis = None, 0
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            weight, axis = node.input[1], 0 if trans_b else 1
        elif node.op_type in WEIGHT_AXIS:
            index, axis = WEIGHT_AXIS[node.op_type]
            weight = node.input[index]
        if weight is not None and weight not in initializers:
            weight = None  # MatMul of two activations (attention scores): no weight to quantize
        elif weight is not None and axis < 0:
            axis += initializers[weight]
        key = OpKey(node.name, node.op_type)
        ops[key] = Op(key, node, weight, axis)
    return ops


def check_config(ops: Mapping[OpKey, Op], config_ops: Sequence[OpKey]) -> None:
    """A config must name exactly the model's tunable ops (one line naming the strangers)."""
    strangers = sorted(str(op) for op in config_ops if op not in ops)
    if strangers:
        raise ModelError(f"the config names ops the ONNX model does not have: "
                         f"{', '.join(strangers)}; its tunable ops are: "
                         f"{', '.join(str(op) for op in ops)}")


def tensor_owners(model: onnx.ModelProto, ops: Mapping[OpKey, Op],
                  config: Mapping[OpKey, OpConfig]) -> dict[str, OpConfig]:
    """Per activation tensor of a static int8 op, the settings that quantize it (module
    docstring): the first int8 op to touch it, carried through the ops in :data:`FOLLOWERS`."""
    constants = {i.name for i in model.graph.initializer}
    by_node = {op.node.name: config[key] for key, op in ops.items()
               if config[key].precision == "int8" and config[key].approach == "static"}
    owners: dict[str, OpConfig] = {}
    for node in model.graph.node:
        settings = by_node.get(node.name)
        if settings is not None:
            for tensor in (*node.input, *node.output):
                if tensor and tensor not in constants:
                    owners.setdefault(tensor, settings)
        elif node.op_type in FOLLOWERS and node.input and node.input[0] in owners:
            for tensor in node.output:
                owners.setdefault(tensor, owners[node.input[0]])
    return owners
