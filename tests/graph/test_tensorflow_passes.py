"""TensorFlow graph optimization: freeze, strip, Grappler passes, bf16; the result loads in TF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tunekit.adaptors.tensorflow import TensorFlowAdaptor
from tunekit.adaptors.tensorflow.graph_optimization.frozen_graph import FrozenGraph, freeze
from tunekit.adaptors.tensorflow.graph_optimization.optimize import optimize
from tunekit.adaptors.tensorflow.graph_optimization.strip import Strip
from tunekit.graph.pipeline import run_passes
from tunekit.graph.registry import available

PASSES = available("tensorflow")


@pytest.fixture(scope="module")
def keras_model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(4)(x)
    model = tf.keras.Model(inputs, outputs)
    bn = model.layers[2]
    bn.set_weights([w + np.random.RandomState(1).rand(*w.shape).astype("float32")
                    for w in bn.get_weights()])
    return model


def _batch() -> np.ndarray:
    return np.random.RandomState(2).rand(5, 8, 8, 3).astype("float32")


def test_fp32_passes_shrink_the_graph_and_keep_outputs(keras_model: tf.keras.Model) -> None:
    result = optimize(TensorFlowAdaptor(), keras_model, ("fp32",), None)
    names = [r.name for r in result.reports]
    assert names == ["strip", "constant_fold", "fold_batchnorm", "arithmetic", "remapper"]
    assert result.reports[-1].nodes_after < result.reports[0].nodes_before
    ops = {n.op for n in result.model.graph_def.node}
    assert "ReadVariableOp" not in ops
    expected = keras_model(_batch(), training=False).numpy()
    got = result.model(_batch())
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_strip_removes_identity_chains(keras_model: tf.keras.Model) -> None:
    graph = freeze(keras_model)
    stripped = Strip().run(graph)
    count = sum(n.op == "Identity" for n in stripped.graph_def.node)
    assert count < sum(n.op == "Identity" for n in graph.graph_def.node)
    np.testing.assert_allclose(stripped(_batch()), graph(_batch()), rtol=1e-6)


def test_saved_graph_loads_in_tensorflow(keras_model: tf.keras.Model, tmp_path: Path) -> None:
    result = optimize(TensorFlowAdaptor(), keras_model, ("fp32",), {"remapper": False})
    result.save(tmp_path / "model.pb")
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((tmp_path / "model.pb").read_bytes())
    reloaded = FrozenGraph(graph_def, result.model.inputs, result.model.outputs)
    np.testing.assert_allclose(reloaded(_batch()), result.model(_batch()), rtol=1e-6)


def test_bf16_converts_ops_and_stays_close(keras_model: tf.keras.Model) -> None:
    result = optimize(TensorFlowAdaptor(), keras_model, ("bf16", "fp32"), None)
    assert "auto_mixed_precision" in [r.name for r in result.reports] and result.bf16_ops
    expected = keras_model(_batch(), training=False).numpy()
    np.testing.assert_allclose(result.model(_batch()), expected, rtol=0.05, atol=0.05)


def test_pass_counts_are_reported_per_pass(keras_model: tf.keras.Model) -> None:
    _, reports = run_passes(freeze(keras_model), PASSES[:2], FrozenGraph.node_count)
    assert reports[1].nodes_after < reports[1].nodes_before


def test_fold_batchnorm_folds_keras3_scale_and_shift_into_weights() -> None:
    """Keras 3 BN after Conv2D, DepthwiseConv2D and Dense (Mul/Add form) ends as one BiasAdd
    each, which the remapper then fuses; outputs stay within float rounding."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.BatchNormalization()(tf.keras.layers.Dense(6)(x))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4)(x))
    for layer in model.layers:
        layer.set_weights([w + np.random.RandomState(1).rand(*w.shape).astype("float32")
                           for w in layer.get_weights()])
    result = optimize(TensorFlowAdaptor(), model, ("fp32",), None)
    report = {r.name: r for r in result.reports}["fold_batchnorm"]
    assert report.nodes_after < report.nodes_before
    ops = [n.op for n in result.model.graph_def.node]
    assert "Mul" not in ops and "AddV2" not in ops
    assert {"_FusedConv2D", "_FusedDepthwiseConv2dNative", "_FusedMatMul"} <= set(ops)
    expected = model(_batch(), training=False).numpy()
    assert np.abs(result.model(_batch()) - expected).max() <= 1e-4 * np.abs(expected).max()


def test_strip_drops_debug_ops_and_dead_nodes() -> None:
    """An Assert guarding the input, a tf.print and a computed-but-unused branch are gone (the
    function's own graph, before TF's freezing prunes anything); the output is unchanged."""
    weights = tf.constant(np.random.RandomState(0).rand(3, 2).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def model(x: tf.Tensor) -> tf.Tensor:
        tf.debugging.assert_greater_equal(x, -10.0)
        tf.print("batch", tf.shape(x))
        _unused = tf.reduce_sum(tf.exp(x))
        return tf.nn.relu(tf.matmul(x, weights))

    concrete = model.get_concrete_function()
    graph = FrozenGraph(concrete.graph.as_graph_def(), ["x"],
                        [concrete.outputs[0].name.split(":")[0]])
    ops = [n.op for n in graph.graph_def.node]
    assert {"If", "PrintV2", "Exp", "NoOp"} <= set(ops)  # TF2 asserts are an If (AssertGuard)
    stripped = Strip().run(graph)
    left = {n.op for n in stripped.graph_def.node}
    assert not left & {"If", "PrintV2", "Exp", "NoOp"}
    x = np.random.RandomState(1).rand(4, 3).astype("float32")
    np.testing.assert_allclose(stripped(x), graph(x), rtol=1e-6)


@pytest.mark.parametrize("precisions", [("fp32",), ("bf16", "fp32")])
def test_a_folder_path_saves_a_savedmodel_that_tf_and_tunekit_load(
        keras_model: tf.keras.Model, tmp_path: Path, precisions: tuple[str, ...]) -> None:
    if "bf16" in precisions:
        from tunekit.adaptors.tensorflow.bf16 import supported

        if not supported():
            pytest.skip("no native bf16 on this CPU")
    result = optimize(TensorFlowAdaptor(), keras_model, precisions, None)
    result.save(tmp_path / "saved")
    serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    [name] = result.model.inputs
    [output] = serve(**{name: tf.constant(_batch())}).values()
    np.testing.assert_allclose(output.numpy(), result.model(_batch()), rtol=1e-6)
    adaptor = TensorFlowAdaptor()
    reloaded = adaptor.load_model(tmp_path / "saved")
    [(outputs, _)] = adaptor.predict(reloaded, [(_batch(), None)])
    np.testing.assert_allclose(outputs, result.model(_batch()), rtol=1e-6)


def test_saving_a_savedmodel_over_a_file_is_refused(keras_model: tf.keras.Model,
                                                    tmp_path: Path) -> None:
    from tunekit.errors import ConfigError

    (tmp_path / "taken").write_text("user data")
    with pytest.raises(ConfigError, match="already exists"):
        optimize(TensorFlowAdaptor(), keras_model, ("fp32",), None).save(tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "user data"
