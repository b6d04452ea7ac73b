"""bf16 auto mixed precision on TensorFlow: Grappler's AMP with ops kept in fp32, and the
accuracy-driven fallback (op type, then op) by the tuner, from Python and from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import tunekit
from tunekit import cli
from tunekit.adaptors.tensorflow.bf16 import supported
from tunekit.adaptors.tensorflow.graph_optimization.amp_adaptor import (
    bf16_nodes,
    build,
    candidates,
)
from tunekit.adaptors.tensorflow.graph_optimization.frozen_graph import FrozenGraph, freeze
from tunekit.errors import ConfigError

pytestmark = pytest.mark.skipif(not supported(), reason="no native bf16 on this CPU")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_keras"


def _chain() -> tf.keras.Model:
    """conv1 → relu → conv2 → relu → mean → dense, named so tests can find the nodes."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="fc")(x))


def _node(graph: FrozenGraph, layer: str, op: str) -> str:
    [name] = [n.name for n in graph.graph_def.node if f"/{layer}" in n.name and n.op == op]
    return name


def _batches(count: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.RandomState(1)
    return [(rng.rand(4, 8, 8, 3).astype("float32"), np.zeros(4, np.int64))
            for _ in range(count)]


# size, not latency: bf16 may be no faster than fp32 on a model this small (or on a busy
# machine), and then FP32 is kept and no bf16 op returned (tests/test_result_selection.py);
# these tests are about which ops fall back, not about speed
NOT_TIMED = "size"


def _bf16_layers(graph: FrozenGraph) -> set[str]:
    return {layer for layer in ("conv1", "conv2", "fc")
            if any(f"/{layer}" in name for name in bf16_nodes(graph))}


def test_candidates_are_the_convs_and_the_matmul() -> None:
    graph = freeze(_chain())
    assert [op.type for op in candidates(graph)] == ["Conv2D", "Conv2D", "MatMul"]


def test_a_kept_op_and_the_ops_it_feeds_stay_fp32() -> None:
    graph = freeze(_chain())
    conv2 = _node(graph, "conv2", "Conv2D")
    mixed = build(graph, [conv2])
    assert _bf16_layers(mixed) == {"conv1", "fc"}
    relu2 = _node(graph, "conv2", "Relu")
    assert relu2 not in bf16_nodes(mixed) and conv2 not in bf16_nodes(mixed)
    x = _batches(1)[0][0]
    assert mixed(x).dtype == np.float32
    np.testing.assert_allclose(mixed(x), graph(x), rtol=0.05, atol=0.02)


def test_without_evaluation_every_candidate_is_bf16() -> None:
    result = tunekit.optimize_graph(_chain(), ("bf16", "fp32"))
    assert len(result.bf16_ops) == 3 and result.tuning is None
    assert "auto_mixed_precision" in result.summary()


def _offset_head() -> tf.keras.Model:
    """A conv feature extractor and a Dense head whose input carries an offset of 300: bf16 (8
    mantissa bits) rounds the features away there, while the conv is fine in bf16."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Lambda(lambda t: t + 300.0)(x)
    head = tf.keras.layers.Dense(4, name="head")
    model = tf.keras.Model(inputs, head(x))
    weights, bias = head.get_weights()
    head.set_weights([weights, bias - 300.0 * weights.sum(0)])
    return model


def test_tuning_with_a_real_metric_falls_back_the_sensitive_op_type(tmp_path: Path) -> None:
    model = _offset_head()
    images = np.random.RandomState(0).rand(64, 8, 8, 3).astype("float32")
    labels = model(images).numpy().argmax(1)  # FP32 predictions: the baseline is exactly 1.0
    data = [(images[i:i + 16], labels[i:i + 16]) for i in range(0, 64, 16)]
    result = tunekit.optimize_graph(model, ("bf16", "fp32"), eval_data=data, metric="topk",
                                    accuracy_criterion={"relative": 0.02}, objective=NOT_TIMED,
                                    workspace=str(tmp_path / "ws"))
    trials = result.tuning.trials
    assert trials[0].metric < 0.5  # all bf16: the head's predictions collapse
    assert result.met and [op.split("/")[1] for op in result.bf16_ops] == ["conv_1"]
    assert len(trials) == 3  # all bf16, Conv2D back to fp32 (fails), MatMul back (meets)
    hits = sum(int((result.model(x).argmax(1) == y).sum()) for x, y in data)
    assert hits / 64 == pytest.approx(trials[-1].metric, abs=0)


def test_ops_of_two_types_fall_back_op_by_op(tmp_path: Path) -> None:
    """conv2 and fc must stay fp32: no single op type does it, the ranked op-wise stage does,
    and conv1 stays bf16."""
    result = tunekit.optimize_graph(
        _chain(), ("bf16", "fp32"), example_data=_batches(),
        eval_func=lambda graph: float(2 - len({"conv2", "fc"} & _bf16_layers(graph))),
        accuracy_criterion={"absolute": 0.0}, objective=NOT_TIMED,
        workspace=str(tmp_path / "ws"))
    assert result.met and _bf16_layers(result.model) == {"conv1"}
    assert len(result.bf16_ops) == 1


def test_tuning_without_any_batch_names_the_data_to_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="quantization.calibration.data"):
        tunekit.optimize_graph(_chain(), ("bf16", "fp32"), eval_func=lambda graph: 1.0,
                               workspace=str(tmp_path / "ws"))


def test_bf16_with_the_amp_pass_switched_off_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="passes.auto_mixed_precision"):
        tunekit.optimize_graph(_chain(), ("bf16", "fp32"),
                               passes={"auto_mixed_precision": False})


@pytest.mark.slow
def test_keras_example_tunes_amp_from_the_cli(tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "digits_bf16.pb"
    code = cli.main(["optimize", str(EXAMPLE / "amp_bf16.yaml"), "--out", str(out),
                     "--set", f"tuning.workspace.path={tmp_path / 'ws'}"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "goal met" in printed.out and "bf16 ops: 5" in printed.out
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(out.read_bytes())
    assert any(n.op == "Conv2D" and n.attr["T"].type == tf.bfloat16.as_datatype_enum
               for n in graph_def.node)


def test_an_amp_tuning_saves_its_graph_but_does_not_load_as_a_quantization(
        tmp_path: Path) -> None:
    result = tunekit.optimize_graph(_chain(), ("bf16", "fp32"), example_data=_batches(),
                                    eval_func=lambda graph: 1.0, objective=NOT_TIMED,
                                    workspace=str(tmp_path / "ws"))
    result.tuning.save(tmp_path / "copy")  # through the AMP adaptor, not the Keras one
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((tmp_path / "copy" / "best_model.pb").read_bytes())
    assert bf16_nodes(result.model.with_graph(graph_def)) == bf16_nodes(result.model)
    with pytest.raises(ConfigError, match="tunekit optimize --out"):
        tunekit.load(tmp_path / "ws", _chain())


def test_a_goal_only_fp32_meets_returns_the_fused_fp32_graph(tmp_path: Path) -> None:
    """Every op back in fp32: the remapper's FP32 fusions run, as in an FP32 optimization."""
    model = _chain()
    result = tunekit.optimize_graph(model, ("bf16", "fp32"), example_data=_batches(),
                                    eval_func=lambda graph: float(not bf16_nodes(graph)),
                                    accuracy_criterion={"absolute": 0.0},
                                    workspace=str(tmp_path / "ws"))
    assert result.met and not result.bf16_ops and not bf16_nodes(result.model)
    fp32 = tunekit.optimize_graph(model, ("fp32",))
    assert [r.name for r in result.reports] == [r.name for r in fp32.reports]  # remapper last
    assert sorted(n.op for n in result.model.graph_def.node) == \
        sorted(n.op for n in fp32.model.graph_def.node)
    x = _batches(1)[0][0]
    expected = model(x).numpy()
    assert np.abs(result.model(x) - expected).max() <= 1e-4 * np.abs(expected).max()
