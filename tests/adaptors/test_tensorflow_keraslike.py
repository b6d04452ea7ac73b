"""TensorFlow candidates are used like the Keras model they replace; the adaptor claims its
models; Keras models of every construction are read right (subclassed, multi-output, default
layer names)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = tf.keras

from tunekit.adaptors.tensorflow import TensorFlowAdaptor
from tunekit.adaptors.tensorflow.bf16 import supported as bf16_supported
from tunekit.errors import ModelError, NotSupportedError
from tunekit.space import OpKey

RNG = np.random.default_rng(0)
ZETA = RNG.normal(size=(10, 4)).astype(np.float32)
ALPHA = RNG.normal(size=(10, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def three_heads() -> Any:
    """Inputs ``zeta``, ``alpha`` (TFLite orders them alpha first) and outputs ``zz_head``,
    ``aa_head``, ``mm`` (TFLite lists ``aa_head`` first)."""
    keras.utils.set_random_seed(0)
    zeta, alpha = keras.Input((4,), name="zeta"), keras.Input((3,), name="alpha")
    h = keras.layers.Concatenate()([keras.layers.Dense(8)(zeta), keras.layers.Dense(8)(alpha)])
    heads = [keras.layers.Dense(n, name=name)(h) for n, name in [(5, "zz_head"), (2, "aa_head"),
                                                                 (1, "mm")]]
    return keras.Model([zeta, alpha], heads)


def fp32_candidate(model: Any, adaptor: TensorFlowAdaptor | None = None) -> Any:
    return fp32_candidate_of(model, {"zeta": ZETA, "alpha": ALPHA}, adaptor)


def fp32_candidate_of(model: Any, batch: Any, adaptor: TensorFlowAdaptor | None = None) -> Any:
    """The candidate of ``model`` with every op in fp32 (a TFLite flatbuffer)."""
    adaptor = adaptor or TensorFlowAdaptor()
    space = adaptor.capabilities(model)
    config = space.default()
    for op in space.ops:
        config = config.with_op(op, space.option(op, "fp32"))
    return adaptor.quantize(model, config, [batch])


def assert_outputs(got: Any, expected: Any) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert isinstance(g, np.ndarray) and g.dtype == np.float32
        np.testing.assert_allclose(g, np.asarray(e), rtol=1e-4, atol=1e-5)


def test_candidate_is_called_like_the_keras_model(three_heads: Any) -> None:
    candidate = fp32_candidate(three_heads)
    expected = three_heads([ZETA, ALPHA])
    assert_outputs(candidate([ZETA, ALPHA]), expected)
    assert_outputs(candidate((tf.constant(ZETA), tf.constant(ALPHA)), training=False), expected)
    assert_outputs(candidate({"alpha": ALPHA, "zeta": ZETA}), expected)
    with pytest.raises(ModelError, match="keyed by input name"):
        candidate({"zeta": ZETA, "beta": ALPHA})


def test_predict_cuts_batches_and_reads_datasets(three_heads: Any) -> None:
    candidate = fp32_candidate(three_heads)
    expected = three_heads.predict([ZETA, ALPHA], verbose=0)
    assert_outputs(candidate.predict([ZETA, ALPHA], batch_size=3, verbose=0), expected)
    labelled = tf.data.Dataset.from_tensor_slices(((ZETA, ALPHA), np.arange(10))).batch(4)
    assert_outputs(candidate.predict(labelled), expected)
    assert_outputs(candidate.predict(labelled, steps=1), [e[:4] for e in expected])
    assert_outputs(candidate.predict({"zeta": ZETA, "alpha": ALPHA}), expected)
    with pytest.raises(NotSupportedError, match=r"score model.predict\(x\)"):
        candidate.evaluate([ZETA, ALPHA], np.zeros(10))


@pytest.mark.parametrize("kind, output", [("keras", "aa_head"), ("savedmodel", "output_1")])
def test_the_configured_output_is_the_one_the_metric_sees(three_heads: Any, tmp_path: Any,
                                                          kind: str, output: str) -> None:
    model = three_heads
    if kind == "savedmodel":  # outputs named output_0..2 in the Keras order, read sorted
        three_heads.export(str(tmp_path / "saved"), verbose=False)
        model = tf.saved_model.load(str(tmp_path / "saved"))
    adaptor = TensorFlowAdaptor(output=output)
    candidate = fp32_candidate(model, adaptor)
    [(outputs, _)] = adaptor.predict(candidate, [({"zeta": ZETA, "alpha": ALPHA}, None)])
    np.testing.assert_allclose(outputs, three_heads([ZETA, ALPHA])[1], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not bf16_supported(), reason="no native bf16 on this CPU")
def test_bf16_candidate_is_called_like_the_keras_model(three_heads: Any) -> None:
    adaptor = TensorFlowAdaptor(bf16=True)
    space = adaptor.capabilities(three_heads)
    config = space.default()
    for op in space.ops:
        config = config.with_op(op, space.option(op, "bf16" if op.name == "zz_head" else "fp32"))
    candidate = adaptor.quantize(three_heads, config, [{"zeta": ZETA, "alpha": ALPHA}])
    outputs = candidate.predict({"zeta": ZETA, "alpha": ALPHA}, batch_size=4)
    assert [o.shape for o in outputs] == [(10, 5), (10, 2), (10, 1)]
    np.testing.assert_allclose(outputs[1], three_heads([ZETA, ALPHA])[1], rtol=1e-5)


class Residual(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.stem = keras.layers.Dense(8, activation="relu")
        self.head = keras.layers.Dense(2)

    def call(self, inputs: Any) -> Any:
        return self.head(self.stem(tf.concat([inputs["zeta"], inputs["alpha"]], 1)))


def test_subclassed_models_tune_once_called() -> None:
    model = Residual()
    with pytest.raises(ModelError, match="never called.*call it once"):
        TensorFlowAdaptor().capabilities(model)
    batch = {"zeta": ZETA, "alpha": ALPHA}
    model(batch)
    adaptor = TensorFlowAdaptor()
    assert [op.type for op in adaptor.capabilities(model).ops].count("Dense") == 2
    candidate = adaptor.quantize(model, adaptor.capabilities(model).default(), [batch])
    assert np.abs(candidate(batch) - model(batch).numpy()).max() < 0.05


def test_functional_model_built_from_a_dict_of_inputs() -> None:
    keras.utils.set_random_seed(0)
    inputs = {"zeta": keras.Input((4,), name="zeta"), "alpha": keras.Input((3,), name="alpha")}
    merged = keras.layers.Concatenate()([inputs["zeta"], inputs["alpha"]])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(8)(merged)))
    batch = {"alpha": ALPHA, "zeta": ZETA}
    candidate = fp32_candidate(model)
    np.testing.assert_allclose(candidate(batch), model(batch), rtol=1e-4, atol=1e-5)


def test_default_layer_names_survive_trace_counters() -> None:
    """Traced once by fit, layer ``dense`` appears as ``dense_1`` and ``dense_1`` as
    ``dense_1_2`` in TFLite's tensor names; each op must still get its own layer's name."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3)])
    model.compile("adam", "mse")
    model.fit(ZETA, np.zeros((10, 3)), epochs=1, verbose=0)
    names = [layer.name for layer in model.layers]
    assert TensorFlowAdaptor().capabilities(model).ops == sorted(OpKey(n, "Dense") for n in names)


@pytest.mark.skipif(not bf16_supported(), reason="no native bf16 on this CPU")
def test_bf16_space_of_a_layer_that_becomes_two_ops() -> None:
    """SeparableConv2D is two TFLite ops (depthwise, then pointwise): no bf16 for either (bf16 is
    per Keras layer), bf16 for the single-op layers."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.SeparableConv2D(8, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    space = TensorFlowAdaptor(bf16=True).capabilities(model)
    bf16 = {op.name for op in space.ops if any(o.precision == "bf16" for o in space.options[op])}
    layer = model.layers[0].name
    assert {op.name.split("#")[0] for op in space.ops}.issuperset({layer})
    assert layer not in bf16 and model.layers[-1].name in bf16


def test_a_model_tflite_cannot_convert_stops_with_one_line() -> None:
    model = keras.Sequential([keras.Input((12,), dtype="int32"), keras.layers.Embedding(100, 8),
                              keras.layers.GRU(8), keras.layers.Dense(2)])
    with pytest.raises(ModelError) as caught:
        TensorFlowAdaptor().capabilities(model)
    message = str(caught.value)
    assert "\n" not in message and "note:" not in message
    assert message.startswith("TFLite cannot convert Sequential: 'tf.TensorListReserve' op")
    assert "/gru" in message


def test_the_adaptor_claims_keras_and_tensorflow_models(three_heads: Any, tmp_path: Any) -> None:
    claims = TensorFlowAdaptor.handles
    assert claims(three_heads) and claims(Residual()) and claims(keras.Sequential())
    assert not claims(np.zeros(3)) and not claims(tf.constant(1.0))
    assert claims("model.keras") and claims(tmp_path / "model.h5") and not claims("model.pt")
    three_heads.export(str(tmp_path / "saved"), verbose=False)
    assert claims(tmp_path / "saved") and claims(tf.saved_model.load(str(tmp_path / "saved")))
    assert not claims(tmp_path)
    assert claims(tf.Module())
    with pytest.raises(ModelError, match="tf.Module without serving signatures"):
        TensorFlowAdaptor().capabilities(tf.Module())


def test_tf_keras_models_tune_too() -> None:
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential([tf_keras.layers.Input((4,)), tf_keras.layers.Dense(2)])
    assert TensorFlowAdaptor.handles(model)
    candidate = fp32_candidate_of(model, ZETA)
    np.testing.assert_allclose(candidate.predict(ZETA), model(ZETA), rtol=1e-4, atol=1e-5)


def test_handles_does_not_import_tensorflow() -> None:
    code = ("import sys; from tunekit.adaptors.tensorflow import TensorFlowAdaptor as T; "
            "assert not T.handles(object()) and T.handles('m.keras'); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
