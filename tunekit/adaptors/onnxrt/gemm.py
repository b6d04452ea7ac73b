"""Gemm as MatMul (+ Add), so that ONNX Runtime's dynamic quantization can take it.

``quantize_dynamic`` quantizes MatMul (as DynamicQuantizeMatMul/MatMulInteger), not Gemm, yet a
fully connected layer exported from torch is a Gemm. Dynamic int8 is what keeps a layer in int8
where static ranges do not hold (calibration data unlike the evaluation data: the half-intensity
digits case, where every static op loses points and NNCF can only answer all-FP32), so a Gemm
chosen dynamic is rewritten first: ``Y = alpha·A'·B' + beta·C`` becomes ``MatMul(A', alpha·B')``
plus ``Add(·, beta·C)``, with ``transA``/``transB`` folded into a Transpose node and the weight.
The node that writes the Gemm's output keeps the Gemm's name and output tensor, so the graph's
outputs and :meth:`~tunekit.adaptors.onnxrt.OnnxRuntimeAdaptor.inspect` find it as before.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import onnx
from onnx import helper, numpy_helper


def gemms_as_matmuls(model: onnx.ModelProto,
                     names: Collection[str]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy of ``model`` with each Gemm node named in ``names`` rewritten as MatMul (+ Add),
    and per Gemm name the name of its MatMul node (the node to quantize dynamically)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    nodes: list[onnx.NodeProto] = []
    matmuls: dict[str, str] = {}
    replaced: set[str] = set()
    for node in graph.node:
        if node.op_type == "Gemm" and node.name in names:
            replaced.update(node.input[1:])
            rewritten = _rewrite(node, graph)
            nodes.extend(rewritten)
            matmuls[node.name] = next(n.name for n in rewritten if n.op_type == "MatMul")
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused_initializers(graph, replaced)
    return copy, matmuls


def _rewrite(node: onnx.NodeProto, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The nodes that compute ``node`` (a Gemm whose B is an initializer) with MatMul."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    name, out = node.name, node.output[0]
    a, c = node.input[0], node.input[2] if len(node.input) > 2 and node.input[2] else None
    nodes = []
    if attrs.get("transA", 0):
        nodes.append(helper.make_node("Transpose", [a], [f"{name}/A_T"], name=f"{name}/A_T",
                                      perm=[1, 0]))
        a = f"{name}/A_T"
    b = node.input[1]
    weight = numpy_helper.to_array(_initializer(graph, b))
    if attrs.get("transB", 0) or alpha != 1.0:
        scaled = (weight.T if attrs.get("transB", 0) else weight) * alpha
        b = _add_initializer(graph, f"{b}/as_matmul", scaled.astype(weight.dtype))
    if c is None:
        return [*nodes, helper.make_node("MatMul", [a, b], [out], name=name)]
    product = f"{name}/MatMul_output"
    nodes.append(helper.make_node("MatMul", [a, b], [product], name=f"{name}/MatMul"))
    if beta != 1.0:
        c = _scaled(graph, nodes, c, beta, name)
    nodes.append(helper.make_node("Add", [product, c], [out], name=name))
    return nodes


def _scaled(graph: onnx.GraphProto, nodes: list[onnx.NodeProto], c: str, beta: float,
            name: str) -> str:
    """``beta·C``: a new initializer when C is one, else a Mul node appended to ``nodes``."""
    initial = next((i for i in graph.initializer if i.name == c), None)
    if initial is not None:
        bias = numpy_helper.to_array(initial)
        return _add_initializer(graph, f"{c}/beta", (bias * beta).astype(bias.dtype))
    factor = _add_initializer(graph, f"{name}/beta", np.array(beta, dtype=np.float32))
    nodes.append(helper.make_node("Mul", [c, factor], [f"{name}/C_scaled"], name=f"{name}/beta"))
    return f"{name}/C_scaled"


def _initializer(graph: onnx.GraphProto, name: str) -> onnx.TensorProto:
    return next(i for i in graph.initializer if i.name == name)


def _add_initializer(graph: onnx.GraphProto, name: str, value: np.ndarray) -> str:
    """Add ``value`` under ``name`` (suffixed until unused: a weight two Gemms share gets one
    copy per Gemm) and return the name."""
    taken = {i.name for i in graph.initializer}
    unique, n = name, 1
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    graph.initializer.append(numpy_helper.from_array(value, unique))
    return unique


def _drop_unused_initializers(graph: onnx.GraphProto, replaced: set[str]) -> None:
    """Remove the weights and biases the rewrite replaced (a transposed or scaled copy took
    their place) where no other node reads them, so the size objective counts them once."""
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in used or i.name not in replaced]
    if len(kept) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


__all__ = ["gemms_as_matmuls"]
