"""What the adaptor does to an ONNX model from elsewhere before tuning it (:func:`normalized`):
files written by other exporters and tools, at other opsets, with functions, fused ops or
weights listed as inputs, all reach ONNX Runtime's quantizer in the one form it handles.
"""

from __future__ import annotations

import onnx
import onnx.inliner
import onnx.shape_inference
import onnx.version_converter

from tunekit.adaptors.onnxrt.graph import COMPUTE, named
from tunekit.errors import ModelError

#: The oldest default-domain opset tuned as it is; older models are converted to it.
MIN_OPSET = 13


def normalized(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` as the adaptor tunes it (itself where nothing changes, else a copy): float32,
    its local functions inlined, at opset 13 at least, its weights initializers and not graph
    inputs, every tensor typed, every node named uniquely."""
    _require_float32(model)
    model = _constants_as_weights(_weights_not_inputs(_at_least_opset(_inlined(model),
                                                                       MIN_OPSET)))
    return named(_typed(model))


def _require_float32(model: onnx.ModelProto) -> None:
    """One line for a float16/bfloat16 model (a data input, or a weight a Conv, Gemm or MatMul
    reads, in half precision): ONNX Runtime's quantizer takes float32 models (on a float16
    CNN every candidate failed in its histogram calibration). A float32 model with a half
    constant elsewhere is tuned as any other."""
    halves = (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    read = {i for n in model.graph.node if n.op_type in COMPUTE for i in n.input}
    found = [(w.name, w.data_type) for w in model.graph.initializer
             if w.data_type in halves and w.name in read]
    found += [(v.name, v.type.tensor_type.elem_type) for v in model.graph.input
              if v.type.tensor_type.elem_type in halves]
    if found:
        name, kind = found[0]
        raise ModelError(f"the ONNX model computes in "
                         f"{onnx.TensorProto.DataType.Name(kind).lower()} ({name!r}); ONNX "
                         f"Runtime's quantizer takes float32 models: export it in float32 "
                         f"(model.float() before torch.onnx.export)")


def _inlined(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its local functions inlined: ONNX Runtime's quantizer sees only the main
    graph's nodes, so a Conv inside a function (``export_modules_as_functions``) stayed float
    while the Adds around it were quantized alone."""
    if not model.functions:
        return model
    return onnx.inliner.inline_local_functions(model)


def _constants_as_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each tensor-valued Constant node made an initializer. Some exporters and
    graph tools write weights as Constant nodes: ONNX Runtime's quantizer then takes a weight
    for an activation (no per-channel scales, no dynamic int8, its float copy kept beside
    the int8 one: a CNN's candidate grew to 1.7x the FP32 file)."""
    if not any(n.op_type == "Constant" and n.domain in ("", "ai.onnx")
               and [a.name for a in n.attribute] == ["value"] for n in model.graph.node):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes = []
    for node in copy.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") \
                and [a.name for a in node.attribute] == ["value"]:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            copy.graph.initializer.append(tensor)
        else:
            nodes.append(node)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy


def _typed(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with a type for every tensor, from ONNX Runtime's symbolic shape inference
    where ONNX's cannot type some (after ONNX Runtime's own fused ops, SkipLayerNormalization
    and the like, in a model ONNX Runtime's transformer optimizer wrote). ONNX Runtime's
    calibrator skips untyped tensors, and quantizing the op that reads one then failed
    ("Unable to get valid quantization scale") for every candidate."""
    weights = {i.name for i in model.graph.initializer}
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001 - ONNX cannot type it: ONNX Runtime's inference may
        graph = model.graph
    typed = weights | {v.name for v in (*graph.value_info, *graph.input, *graph.output)}
    if all(o in typed for node in model.graph.node for o in node.output if o):
        return model
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:
        return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # noqa: BLE001 - left as it is: the untyped tensors' ops then fail alone
        return model


def _at_least_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """``model`` converted to ``opset`` when it imports an older default-domain opset. Per-
    channel int8 needs DequantizeLinear's ``axis`` (opset 13): on an opset-11 export ONNX
    Runtime's quantizer writes a per-channel bias DequantizeLinear that its own loader then
    rejects as an invalid graph, so every candidate failed."""
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return model
    try:
        return onnx.version_converter.convert_version(model, opset)
    except Exception as exc:
        raise ModelError(f"the ONNX model uses opset {current}, and ONNX could not convert it "
                         f"to opset {opset}, which int8 per-channel weights need "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                         f"export it again with opset_version={opset} or newer") from exc


def _weights_not_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the graph inputs that are initializers. Older exporters
    (``keep_initializers_as_inputs``, IR < 4) list every weight as an input, which makes it a
    value the caller may override rather than a constant: ONNX Runtime folds and fuses less,
    warns once per weight on every session, and its quantizer cannot rely on the weight."""
    weights = {i.name for i in model.graph.initializer}
    if not any(i.name in weights for i in model.graph.input):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    inputs = [i for i in copy.graph.input if i.name not in weights]
    del copy.graph.input[:]
    copy.graph.input.extend(inputs)
    return copy
