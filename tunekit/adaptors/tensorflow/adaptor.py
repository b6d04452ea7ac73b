"""The TensorFlow adaptor: the plugin the core talks to; the work lives in the sibling modules.

Importing this module does not import TensorFlow (seconds of start-up): the helpers that need it
are imported on first use, so ``tunekit plugins`` and configs naming another framework stay fast.

Candidates: int8/fp32 mixes are TFLite flatbuffers (:class:`runtime.TFLiteModel`) quantized from
one calibration; bf16/fp32 mixes of Keras models are Keras clones with per-layer bf16 policies
(:class:`bf16.KerasBF16Model`); both are called and ``predict``-ed like the Keras model they
replace (:class:`keraslike.KerasLike`), so an eval_func written for Keras scores them too.
docs/tensorflow-backend.md has the measurements behind both.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.data import require_batches, split_batch
from tunekit.errors import ConfigError, ModelError, NotSupportedError, TrialError, TunekitError
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace, int8_options

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import

APPROACHES = ("static", "dynamic", "auto")
ALGORITHMS = ("minmax", "percentile")
GRANULARITIES = ("per_channel", "per_tensor")


class _ModelState:
    """What the adaptor derives from one FP32 model once (its
    :meth:`~tunekit.adaptor.Adaptor.model_state`): its float flatbuffer, its tunable ops, and
    the calibration of the last calibration data seen (keyed by the data's content)."""

    def __init__(self, source: Any, float_blob: bytes, ops: list[Any]) -> None:
        self.source = source
        self.float_blob = float_blob
        self.ops = ops
        self.calibration: tuple[str, Any, list[Any]] | None = None
        from tunekit.adaptors.tensorflow.runtime import input_order

        self.order = input_order(float_blob, source.input_names)
        self.output = source.output_names.index(source.output)


class TensorFlowAdaptor(Adaptor):
    """Tunes Keras models and SavedModels on CPU: int8 (TFLite) or bf16 (TF) per op, or fp32.

    Parameters (keyword-only, stored as given):
        inputs: the model's input names in the order tuple batches give them (default: the
            model's own order).
        output: the output the metric sees (default: the first).
        signature: the SavedModel signature to tune.
        bf16: offer bf16 per op (Keras models, CPUs with native bf16). Off by default: TFLite
            has no bf16 kernels, so bf16 ops cannot share a model with int8 ops.
        num_threads: TFLite interpreter threads (default: every core, as TensorFlow uses).
    """

    model_suffix: ClassVar[str] = ""  # a folder: the TensorFlow file plus the recipe
    saved_folder_markers: ClassVar[tuple[str, ...]] = ("saved_model.pb",)

    def __init__(self, *, inputs: Sequence[str] | None = None, output: str | None = None,
                 signature: str = "serving_default", bf16: bool = False,
                 num_threads: int | None = None) -> None:
        self.inputs = inputs
        self.output = output
        self.signature = signature
        self.bf16 = bf16
        self.num_threads = num_threads

    @classmethod
    def handles(cls, model: Any) -> bool:
        """Claims Keras models (``keras.Model`` of any kind, Keras 3 or tf_keras), SavedModels
        loaded with ``tf.saved_model.load``, other ``tf.Module`` objects (to say what they
        lack), and paths to a ``.keras``/``.h5`` file or a SavedModel folder. TensorFlow is not imported to answer: a Keras model cannot exist
        unless its package is already imported."""
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            return path.suffix in (".keras", ".h5") or (path / "saved_model.pb").is_file()
        for package in ("keras", "tf_keras"):
            module = sys.modules.get(package)
            if module is not None and isinstance(model, getattr(module, "Model", ())):
                return True
        tf = sys.modules.get("tensorflow")
        return tf is not None and (isinstance(model, tf.Module) or (
            hasattr(model, "signatures") and type(model).__module__.startswith("tensorflow.")))

    # -- the FP32 model ------------------------------------------------------------------------
    def _state(self, model: Any) -> _ModelState:
        from tunekit.adaptors.tensorflow import source

        source.check_kind(model)
        return self.model_state(model, lambda: self._convert(model))

    def _convert(self, model: Any) -> _ModelState:
        """``model`` converted once to a float flatbuffer, with its tunable ops."""
        from tunekit.adaptors.tensorflow import source
        from tunekit.adaptors.tensorflow.runtime import conversion_error, quiet

        float_model = source.resolve(model, self.inputs, self.output, self.signature)
        try:
            with quiet():
                blob = float_model.converter().convert()
        except Exception as exc:
            raise ModelError(f"TFLite cannot convert {type(model).__name__}: "
                             f"{conversion_error(exc)}") from exc
        return _ModelState(float_model, blob, _find_ops(float_model, blob))

    # -- tuning space and candidates -----------------------------------------------------------
    def capabilities(self, model: Any, approach: str = "static") -> TuningSpace:
        """Every TFLite op TFLite can run in int8 (Conv2D, DepthwiseConv2D, Dense, MatMul, Add,
        Multiply, Concatenate, pooling), with its int8 options, bf16 (if enabled) and fp32."""
        if approach not in APPROACHES:
            raise ConfigError("quantization.approach", f"unknown approach {approach!r}; "
                              f"expected one of {', '.join(APPROACHES)}")
        if approach == "dynamic":
            raise NotSupportedError("the tensorflow adaptor quantizes statically (TFLite int8 "
                                    "kernels with calibrated activations); use approach: static")
        from tunekit.adaptors.tensorflow import bf16, graph

        state = self._state(model)
        if not state.ops:
            raise NotSupportedError(f"{type(model).__name__} has no op TFLite can quantize "
                                    f"(types: {', '.join(t for t, _ in graph.TUNABLE.values())})")
        counts: dict[str, int] = {}
        for op in state.ops:
            layer = op.key.name.split("#")[0]
            counts[layer] = counts.get(layer, 0) + 1
        # bf16 re-types the layers of a Sequential/Functional graph (not a subclassed model)
        with_bf16 = self.bf16 and state.source.keras is state.source.original and bf16.supported()
        options = {}
        for op in state.ops:
            weighted = op.weight is not None
            int8 = (int8_options(["static"], ["asym"], list(GRANULARITIES), list(ALGORITHMS))
                    if weighted else [OpConfig("int8", "static", "asym", None, a)
                                      for a in ALGORITHMS])
            single = counts[op.key.name.split("#")[0]] == 1  # bf16 is per Keras layer
            floats = [OpConfig("bf16")] if with_bf16 and single else []
            options[op.key] = (*int8, *floats, OpConfig("fp32"))
        return TuningSpace(options)

    def quantize(self, model: Any, config: QuantConfig, calib_data: Iterable[DataBatch]) -> Any:
        """A new model in ``config``'s precisions; ``model`` is not modified."""
        state = self._state(model)
        known = {op.key for op in state.ops}
        unknown = sorted(set(config.ops) - known)
        if unknown:
            raise ModelError("the config names ops this model does not have: "
                             + ", ".join(map(str, unknown[:5])))
        counts = config.counts()
        if counts.get("bf16"):
            if counts.get("int8"):
                raise TrialError("a config cannot mix int8 and bf16 ops: int8 runs in TFLite, "
                                 "which has no bf16 kernels; fall the bf16 ops back to fp32")
            return self._checked(self._bf16(state, config), state, calib_data)
        if not counts.get("int8"):
            from tunekit.adaptors.tensorflow.runtime import TFLiteModel

            candidate = TFLiteModel(state.float_blob, config, state.source.input_names,
                                    order=state.order, output=state.output,
                                    threads=self.num_threads)
            return self._checked(candidate, state, calib_data)
        batches = require_batches(calib_data, "the calibration data")
        return self._checked(self._int8(state, config, batches), state, batches)

    def _int8(self, state: _ModelState, config: QuantConfig, batches: list[Any]) -> Any:
        from tunekit.adaptors.tensorflow import calibration, quantize
        from tunekit.adaptors.tensorflow.runtime import TFLiteModel, quiet

        key = _fingerprint(state.source, batches)
        if state.calibration is None or state.calibration[0] != key:
            with quiet():
                result = calibration.calibrate(state.source, batches, state.order)
            state.calibration = (key, result, _find_ops(state.source, result.blob))
        _, result, ops = state.calibration
        with quiet():
            blob = quantize.build(result, ops, config)
        return TFLiteModel(blob, config, state.source.input_names, order=state.order,
                           output=state.output, reference=result.blob, threads=self.num_threads)

    def _bf16(self, state: _ModelState, config: QuantConfig) -> Any:
        if state.source.keras is None:
            raise TrialError("bf16 needs a Keras model (its layers get bf16 dtype policies); "
                             "a SavedModel tunes in int8 and fp32")
        from tunekit.adaptors.tensorflow import bf16

        return bf16.clone(state.source, [op.name for op in config.ops_in("bf16")])

    def _checked(self, candidate: Any, state: _ModelState, batches: Iterable[DataBatch]) -> Any:
        """Run one batch so that a candidate that cannot run fails here, as a TrialError."""
        first = next(iter(batches or []), None)
        if first is None:
            return candidate
        try:
            self._run(candidate, split_batch(first)[0])
        except TunekitError:
            raise
        except Exception as exc:
            raise TrialError(f"the candidate {candidate!r} fails on a calibration batch "
                             f"({type(exc).__name__}: {exc})") from exc
        return candidate

    # -- running -------------------------------------------------------------------------------
    def _run(self, model: Any, inputs: Any) -> np.ndarray:
        from tunekit.adaptors.tensorflow import source
        from tunekit.adaptors.tensorflow.bf16 import KerasBF16Model
        from tunekit.adaptors.tensorflow.graph_optimization.frozen_graph import FrozenGraph
        from tunekit.adaptors.tensorflow.runtime import TFLiteModel

        if isinstance(model, FrozenGraph):  # graph optimization's result: runs itself
            return model(inputs)
        if isinstance(model, TFLiteModel):
            return model.run(source.feed(inputs, model.input_names))[0]
        if isinstance(model, KerasBF16Model):
            return model.run(source.feed(inputs, model.input_names))
        return source.resolve(model, self.inputs, self.output, self.signature)(inputs)

    def predict(self, model: Any, data: Iterable[DataBatch]) -> Iterator[tuple[np.ndarray, Any]]:
        """Per batch: (the chosen output as float32 numpy, labels as numpy or None)."""
        for batch in data:
            inputs, labels = split_batch(batch)
            outputs = np.asarray(self._run(model, inputs), np.float32)
            yield outputs, None if labels is None else np.asarray(labels)

    def run_batch(self, model: Any, inputs: Any) -> Any:
        return self._run(model, inputs)

    def runtime(self, model: Any) -> str:
        """``TFLite`` for int8/fp32 candidates; FP32 models and bf16 candidates run in
        TensorFlow (the runtime switch alone makes a small Keras model several times faster)."""
        import tensorflow as tf

        from tunekit.adaptors.tensorflow.runtime import TFLiteModel

        if isinstance(model, TFLiteModel):
            return "TFLite"
        return "TensorFlow (Keras)" if isinstance(model, tf.keras.Model) else "TensorFlow"

    def inspect(self, model: Any, candidate: Any, ops: Sequence[OpKey],
                data: Iterable[DataBatch]) -> Mapping[OpKey, tuple[np.ndarray, np.ndarray]]:
        """Per op, its output in the float flatbuffer the candidate was built from and in the
        candidate (dequantized), on the same batches."""
        from tunekit.adaptors.tensorflow import inspection
        from tunekit.adaptors.tensorflow.runtime import TFLiteModel

        if not isinstance(candidate, TFLiteModel):
            raise NotSupportedError(f"the tensorflow adaptor inspects TFLite candidates (int8 and "
                                    f"fp32 ops), not {type(candidate).__name__}")
        state = self._state(model)
        known = state.ops if candidate.reference is state.float_blob else \
            state.calibration[2] if state.calibration and \
            candidate.reference is state.calibration[1].blob else None
        return inspection.compare(candidate, ops, [split_batch(b)[0] for b in data], known)

    # -- files ---------------------------------------------------------------------------------
    def load_model(self, path: Path) -> Any:
        from tunekit.adaptors.tensorflow import source

        return source.load_model(Path(path))

    def save(self, candidate: Any, config: QuantConfig, path: Path) -> None:
        from tunekit.adaptors.tensorflow import serialize

        serialize.save(candidate, config, Path(path))

    def load(self, model: Any, config: QuantConfig, path: Path) -> Any:
        from tunekit.adaptors.tensorflow import serialize

        return serialize.load(self._state(model).source, config, Path(path), self.num_threads)

    def model_size(self, model: Any) -> int:
        from tunekit.adaptors.tensorflow.runtime import TFLiteModel

        if isinstance(model, TFLiteModel):
            return len(model.blob)
        keras = getattr(model, "keras", model)
        if not hasattr(keras, "weights"):
            raise NotSupportedError(f"cannot size a {type(model).__name__}")
        return int(sum(np.asarray(w).nbytes for w in keras.weights))

    def optimize_graph(self, model: Any, precisions: Sequence[str], passes: Any,
                       example_batch: DataBatch | None,
                       tune: Callable[[Any, Any], Any] | None) -> Any:
        """The ``tensorflow.*`` passes and Grappler's AMP (see
        :mod:`.graph_optimization.optimize`); no example batch is needed."""
        from tunekit.adaptors.tensorflow.graph_optimization.optimize import optimize

        return optimize(self, model, precisions, passes, tune)


def _find_ops(source: Any, blob: bytes) -> list[Any]:
    """The tunable ops of a flatbuffer of ``source``, named after its Keras layers if any."""
    from tunekit.adaptors.tensorflow import graph

    keras = source.keras
    if keras is None:
        return graph.find_ops(graph.read(blob))
    return graph.find_ops(graph.read(blob), graph.keras_layers(keras), graph.kernel_sizes(keras))


def _fingerprint(float_model: Any, batches: Sequence[DataBatch]) -> str:
    """A digest of the calibration inputs: the same data reuses the cached calibration."""
    digest = hashlib.sha1()
    for batch in batches:
        for name, array in float_model.feed(split_batch(batch)[0]).items():
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
