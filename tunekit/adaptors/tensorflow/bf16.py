"""bf16 per op for Keras models: a clone whose chosen layers compute in bfloat16.

Each bf16 layer gets Keras' ``mixed_bfloat16`` dtype policy: its variables stay float32 and are
cast to bf16 when read, its inputs are cast on entry (Keras autocasts), and the next float32
layer casts back. Those are exactly the per-op casts a bf16 op needs; TensorFlow's oneDNN
kernels then run the layer's conv/matmul in bf16 (avx512_bf16 here). The clone is called through
one ``tf.function`` so the casts fuse into the graph Grappler optimises.

TFLite has no bf16 kernels, so bf16 candidates run in TensorFlow, and a config cannot mix int8
(TFLite) and bf16 ops; docs/tensorflow-backend.md gives the figures behind this choice.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tunekit.adaptors.tensorflow.keraslike import KerasLike
from tunekit.adaptors.tensorflow.source import FloatModel, keras_function


def supported() -> bool:
    """Whether oneDNN runs bf16 natively here (otherwise bf16 is emulated and slower)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        if not _pywrap_util_port.IsMklEnabled():
            return False
    except (ImportError, AttributeError):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class KerasBF16Model(KerasLike):
    """A candidate of Keras layers, some in bf16; called and ``predict``-ed like the FP32 model,
    returning float32 numpy."""

    def __init__(self, clone: Any, source: FloatModel, layers: Collection[str]) -> None:
        self.keras = clone
        self.layers = sorted(layers)
        self.input_names = source.input_names
        function, _, out_names = keras_function(clone)
        self._function = function
        self._output = source.output_names.index(source.output)
        self._out_names = out_names

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """The output the metric sees."""
        return self.outputs(feed)[self._output]

    def outputs(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        outputs = self._function(**{k: tf.constant(v) for k, v in inputs.items()})
        return [np.asarray(tf.cast(outputs[name], tf.float32)) for name in self._out_names]

    def __repr__(self) -> str:
        return f"KerasBF16Model(bf16 layers: {', '.join(self.layers)})"


def clone(source: FloatModel, layers: Collection[str]) -> KerasBF16Model:
    """A copy of the Keras model with ``layers`` computing in bf16, weights shared by value."""
    wanted = set(layers)

    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name in wanted:
            config["dtype"] = "mixed_bfloat16"
        return type(layer).from_config(config)

    copy = tf.keras.models.clone_model(source.keras, clone_function=clone_layer)
    copy.set_weights(source.keras.get_weights())
    return KerasBF16Model(copy, source, wanted)
