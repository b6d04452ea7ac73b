"""Gemm as MatMul (+ Add) for ONNX Runtime's dynamic quantization: the rewrite computes what the
Gemm computed for every attribute combination, and a dynamic Gemm in the adaptor runs int8
(MatMulInteger) with the graph's outputs unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tunekit.adaptors.onnxrt import OnnxRuntimeAdaptor, OrtModel  # noqa: E402
from tunekit.adaptors.onnxrt.gemm import gemms_as_matmuls  # noqa: E402
from scoring import top1


def gemm_model(rng: np.random.Generator) -> onnx.ModelProto:
    """Five Gemms over one input: plain, transB with alpha/beta, transA, no C, a C that is an
    activation (scaled by beta), and two of them sharing one weight."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])
    xt = helper.make_node("Transpose", ["x"], ["xt"], name="xt", perm=[1, 0])
    weights = {"w": rng.normal(size=(6, 4)), "wt": rng.normal(size=(4, 6)),
               "c": rng.normal(size=(4,)), "cb": rng.normal(size=(1, 4))}
    nodes = [xt,
             helper.make_node("Gemm", ["x", "w", "c"], ["y0"], name="plain"),
             helper.make_node("Gemm", ["x", "wt", "cb"], ["y1"], name="trans_b", transB=1,
                              alpha=0.5, beta=2.0),
             helper.make_node("Gemm", ["xt", "w", "c"], ["y2"], name="trans_a", transA=1),
             helper.make_node("Gemm", ["x", "w"], ["y3"], name="no_c", alpha=1.5),
             helper.make_node("Gemm", ["x", "wt", "y0"], ["y4"], name="c_activation",
                              transB=1, beta=0.25)]
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["batch", 4])
               for i in range(5)]
    graph = helper.make_graph(nodes, "gemms", [x], outputs, [
        numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_rewrite_computes_what_each_gemm_computed() -> None:
    rng = np.random.default_rng(0)
    model = gemm_model(rng)
    names = ["plain", "trans_b", "trans_a", "no_c", "c_activation"]
    rewritten, matmuls = gemms_as_matmuls(model, names)
    onnx.checker.check_model(rewritten)
    assert "Gemm" not in {n.op_type for n in rewritten.graph.node}
    assert set(matmuls) == set(names)
    assert matmuls["no_c"] == "no_c"  # no Add: the MatMul itself keeps the Gemm's name
    by_name = {n.name: n for n in rewritten.graph.node}
    assert all(by_name[m].op_type == "MatMul" for m in matmuls.values())
    assert by_name["plain"].op_type == "Add" and by_name["plain"].output[0] == "y0"
    x = {"x": rng.normal(size=(3, 6)).astype(np.float32)}
    before, after = OrtModel(model).run(x), OrtModel(rewritten).run(x)
    for want, got in zip(before, after):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    used = {i for n in rewritten.graph.node for i in n.input}
    assert {i.name for i in rewritten.graph.initializer} <= used  # replaced weights dropped


def test_only_the_named_gemms_are_rewritten() -> None:
    model = gemm_model(np.random.default_rng(1))
    rewritten, matmuls = gemms_as_matmuls(model, ["trans_b"])
    assert list(matmuls) == ["trans_b"]
    assert [n.name for n in rewritten.graph.node if n.op_type == "Gemm"] == \
        ["plain", "trans_a", "no_c", "c_activation"]
    assert "wt" in {i.name for i in rewritten.graph.initializer}  # c_activation still reads it


def test_a_dynamic_gemm_runs_int8_and_keeps_the_outputs(onnx_digits: Any, onnx_calib: list,
                                                        onnx_eval: list) -> None:
    adaptor = OnnxRuntimeAdaptor()
    auto = adaptor.capabilities(onnx_digits, "auto")
    dynamic_types = {op.type for op in auto.ops
                     if any(o.approach == "dynamic" for o in auto.options[op])}
    assert dynamic_types == {"Gemm"}  # ConvInteger is slower than FP32: static only in auto
    gemms = [op for op in auto.ops if op.type == "Gemm"]
    config = auto.uniform("fp32")
    for op in gemms:
        config = config.with_op(op, auto.option(op, "int8", approach="dynamic"))
    candidate = adaptor.quantize(onnx_digits, config, onnx_calib)
    types = [n.op_type for n in candidate.proto.graph.node]
    assert "Gemm" not in types and types.count("MatMulInteger") == len(gemms)
    assert [o.name for o in candidate.proto.graph.output] == \
        [o.name for o in onnx_digits.graph.output]
    fp32 = top1(adaptor, onnx_digits, onnx_eval)
    assert abs(top1(adaptor, candidate, onnx_eval) - fp32) <= 0.01
    errors = adaptor.inspect(onnx_digits, candidate, gemms, onnx_eval[:1])
    for fp32_out, int8_out in errors.values():
        assert fp32_out.shape == int8_out.shape
        assert 0 < np.abs(fp32_out - int8_out).mean() < 0.05 * np.abs(fp32_out).mean()
    everything = adaptor.capabilities(onnx_digits, "dynamic")
    assert {op.type for op in everything.ops} == {"Conv", "Gemm"}


def test_qoperator_static_ops_then_a_dynamic_gemm(onnx_digits: Any, onnx_calib: list,
                                                   onnx_eval: list) -> None:
    """QOperator writes ``X_quantized`` for a tensor an int8 op wrote; the dynamic quantizer
    would name its own int8 copy of the Gemm's input alike (a duplicate ONNX Runtime rejects)."""
    adaptor = OnnxRuntimeAdaptor(format="qoperator")
    auto = adaptor.capabilities(onnx_digits, "auto")
    config = auto.default()
    for op in auto.ops:
        if op.type == "Gemm":
            config = config.with_op(op, auto.option(op, "int8", approach="dynamic"))
    candidate = adaptor.quantize(onnx_digits, config, onnx_calib)
    types = {n.op_type for n in candidate.proto.graph.node}
    assert {"QLinearConv", "MatMulInteger"} <= types and "Gemm" not in types
    assert top1(adaptor, candidate, onnx_eval) > 0.95


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_inspect_finds_a_dynamic_convs_float_output(onnx_digits: Any, onnx_calib: list,
                                                    onnx_eval: list, fmt: str) -> None:
    """ONNX Runtime renames a dynamic Conv ``<name>_quant`` (ConvInteger) and a Mul writes its
    float output under the Conv's own name: that tensor is the op's output to compare."""
    adaptor = OnnxRuntimeAdaptor(format=fmt)
    dynamic = adaptor.capabilities(onnx_digits, "dynamic")
    convs = [op for op in dynamic.ops if op.type == "Conv"]
    config = adaptor.capabilities(onnx_digits).default()
    for op in convs:
        config = config.with_op(op, dynamic.option(op, "int8", approach="dynamic"))
    candidate = adaptor.quantize(onnx_digits, config, onnx_calib)
    for fp32_out, int8_out in adaptor.inspect(onnx_digits, candidate, convs,
                                              onnx_eval[:1]).values():
        assert fp32_out.shape == int8_out.shape
        assert 0 < np.abs(fp32_out - int8_out).mean() < 0.1 * np.abs(fp32_out).mean()
