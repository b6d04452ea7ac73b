"""An Add of an additive attention mask stays float: its int8 range would span ±3.4e38 and round
every real score to one value. Hand-built graphs (each way a mask is written) and HuggingFace
encoders exported by torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tunekit.adaptors.onnxrt.graph import find_ops, masks, named  # noqa: E402

LOWEST = float(np.finfo(np.float32).min)


def _graph(mask_nodes: list, mask_inits: list, mask_tensor: str) -> onnx.ModelProto:
    """x @ W gives scores; the scores plus ``mask_tensor`` go to a Softmax; the scores plus x2 is
    a residual Add of two activations."""
    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["scores"], name="matmul"),
             *mask_nodes,
             helper.make_node("Add", ["scores", mask_tensor], ["masked"], name="mask_add"),
             helper.make_node("Softmax", ["masked"], ["probs"], name="softmax"),
             helper.make_node("Add", ["probs", "x2"], ["y"], name="residual")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 4])
                     for n in ("x", "x2", "m")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        initializer=[weight, *mask_inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


MASKS = {
    "where_initializer": ([helper.make_node("Cast", ["m"], ["cond"], to=TensorProto.BOOL),
                           helper.make_node("Where", ["cond", "zero", "lowest"], ["mv"])],
                          [numpy_helper.from_array(np.zeros((), np.float32), "zero"),
                           numpy_helper.from_array(np.array(LOWEST, np.float32), "lowest")], "mv"),
    "mul_constant_node": ([helper.make_node("Constant", [], ["big"], value=numpy_helper.from_array(
                               np.array(LOWEST, np.float32))),
                           helper.make_node("Sub", ["one", "m"], ["inv"]),
                           helper.make_node("Mul", ["inv", "big"], ["mv"])],
                          [numpy_helper.from_array(np.ones((), np.float32), "one")], "mv"),
    "minus_infinity_value_float": (
        [helper.make_node("Constant", [], ["ninf"], value_float=float("-inf")),
         helper.make_node("Cast", ["m"], ["cond"], to=TensorProto.BOOL),
         helper.make_node("Where", ["cond", "m", "ninf"], ["mv"])], [], "mv"),
}


@pytest.mark.parametrize("kind", MASKS)
def test_a_mask_add_is_not_tunable_a_residual_add_is(kind: str) -> None:
    model = _graph(*MASKS[kind])
    assert "mv" in masks(model)
    names = {key.name for key in find_ops(model)}
    assert names == {"matmul", "residual"}


def test_an_add_of_ordinary_activations_stays_tunable() -> None:
    # the same graph with an activation where the mask was: its Add is a join like any other
    model = _graph([helper.make_node("Relu", ["m"], ["mv"])], [], "mv")
    assert not masks(model) and {k.name for k in find_ops(model)} == {"matmul", "mask_add",
                                                                      "residual"}


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_huggingface_encoders_keep_their_mask_adds_float(family: str, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.zoo.zoo_models import tiny_bert

    ids = torch.randint(0, 200, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[0, 10:] = 0
    path = tmp_path / "encoder.onnx"
    torch.onnx.export(tiny_bert(family), (ids, mask), str(path), input_names=["ids", "mask"],
                      dynamo=False)
    model = named(onnx.load(str(path)))
    masked = masks(model)
    adds = [op for key, op in find_ops(model).items() if key.type == "Add"]
    assert masked and len(adds) == 4  # the two residual Adds of each of the two layers
    assert not any(i in masked for op in adds for i in op.node.input)


def test_histogram_calibration_leaves_out_a_tensor_no_histogram_can_span() -> None:
    """numpy cannot bin ±3.4e38; the mask tensors take their MinMax range, the rest their own."""
    from tunekit.adaptors.onnxrt import calibration

    model = _graph(*MASKS["where_initializer"])
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.normal(size=(2, 4)).astype(np.float32),
              "x2": rng.normal(size=(2, 4)).astype(np.float32),
              "m": (rng.random((2, 4)) > 0.3).astype(np.float32)} for _ in range(4)]
    ranges = calibration.collect(model, feeds, ["minmax", "percentile", "entropy"])
    assert ranges["minmax"]["masked"][0] == LOWEST
    for algorithm in ("percentile", "entropy"):
        assert "masked" not in ranges[algorithm] and "scores" in ranges[algorithm]
