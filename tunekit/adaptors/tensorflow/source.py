"""The FP32 model a user hands over: a ``keras.Model``, a ``.keras`` file or a SavedModel.

Everything downstream (op discovery, calibration, bf16 clones, timing the baseline) needs the
same three things from it: a TFLite converter, a way to run it on numpy inputs, and its input and
output names. :class:`FloatModel` gives them for both kinds of model, so no other module asks
which kind it has.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tunekit.adaptors.tensorflow.keraslike import feed
from tunekit.errors import ModelError

SIGNATURE = "serving_default"


@dataclass
class FloatModel:
    """A FP32 model with its calling convention resolved.

    ``keras`` is set for Keras models (bf16 clones need the layer graph); ``function`` is the
    concrete function TFLite converts and the baseline runs; ``input_names`` order the inputs a
    tuple batch fills; ``output`` is the output the metric sees.
    """

    original: Any
    keras: Any | None
    function: Any
    input_names: list[str]
    output_names: list[str]
    output: str

    def converter(self) -> Any:
        """A fresh TFLite converter of the model (converters are single-use)."""
        if self.keras is not None:
            return tf.lite.TFLiteConverter.from_keras_model(self.keras)
        return tf.lite.TFLiteConverter.from_concrete_functions([self.function], self.original)

    def feed(self, inputs: Any) -> dict[str, np.ndarray]:
        """The batch's inputs as ``{input name: float32 array}``."""
        return feed(inputs, self.input_names)

    def __call__(self, inputs: Any) -> np.ndarray:
        """The chosen output of one call on ``inputs``, as numpy."""
        outputs = self.function(**{k: tf.constant(v) for k, v in self.feed(inputs).items()})
        return _pick(outputs, self.output, self.output_names)


def _pick(outputs: Any, name: str, names: Sequence[str]) -> np.ndarray:
    if isinstance(outputs, Mapping):
        return np.asarray(outputs[name])
    if isinstance(outputs, (tuple, list)):
        return np.asarray(outputs[list(names).index(name)])
    return np.asarray(outputs)


_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], FloatModel]] = \
    weakref.WeakKeyDictionary()


def resolve(model: Any, inputs: Sequence[str] | None = None, output: str | None = None,
            signature: str = SIGNATURE) -> FloatModel:
    """The :class:`FloatModel` of ``model`` (cached per model object and options)."""
    check_kind(model)
    key = (tuple(inputs) if inputs else None, output, signature)
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = _build(model, inputs, output, signature)
    return per_model[key]


def check_kind(model: Any) -> None:
    """Refuse what is not a TensorFlow model, saying what it is and what to use instead."""
    root = type(model).__module__.split(".")[0]
    if root == "torch":
        raise ModelError(f"{type(model).__name__} is a PyTorch model; the tensorflow adaptor "
                         "takes Keras models and SavedModels. Use framework: pytorch")
    if isinstance(model, (str, Path)):
        raise ModelError(f"got the path {str(model)!r}; load it with the adaptor's load_model "
                         "(model.path in the YAML) or pass the loaded model")
    if _is_keras(model) or hasattr(model, "signatures"):
        return
    if isinstance(model, tf.Module):
        raise ModelError(f"{type(model).__name__} is a tf.Module without serving signatures; "
                         "save it with tf.saved_model.save(module, folder, signatures=...) and "
                         "give the folder (or its tf.saved_model.load), or give a keras.Model")
    raise ModelError(f"{type(model).__name__} is not a TensorFlow model; give a keras.Model, "
                     "a .keras file or a SavedModel directory")


def _is_keras(model: Any) -> bool:
    """A Keras 3 model, or a Keras 2 one when the program imported ``tf_keras``."""
    legacy = sys.modules.get("tf_keras")
    return isinstance(model, tf.keras.Model) or (
        legacy is not None and isinstance(model, legacy.Model))


def _build(model: Any, inputs: Sequence[str] | None, output: str | None,
           signature: str) -> FloatModel:
    if _is_keras(model):
        listed = getattr(model, "inputs", None) and not _dict_inputs(model)
        keras = model if listed else functional(model)
        function, in_names, out_names = keras_function(keras)
    else:
        if signature not in model.signatures:
            raise ModelError(f"the SavedModel has no signature {signature!r}; it has: "
                             f"{', '.join(model.signatures) or 'none'}")
        function = model.signatures[signature]
        in_names = sorted(function.structured_input_signature[1])
        out_names = sorted(function.structured_outputs)
        keras = None
    if inputs:
        _check_names("input", inputs, in_names)
        if sorted(inputs) != sorted(in_names):
            raise ModelError(f"inputs must list every model input once; the model's inputs "
                             f"are: {', '.join(in_names)}")
        in_names = list(inputs)
    if output is not None:
        _check_names("output", [output], out_names)
    return FloatModel(model, keras, function, in_names, out_names, output or out_names[0])


def functional(model: Any) -> Any:
    """A Functional model with a list of named inputs around ``model``, a subclassed model or one
    built from a dict of inputs: TFLite's converter, layer naming and dict batches all need
    symbolic inputs in a list. A subclassed model has them only through the shapes of its first
    call (one tensor, a list of them, or a dict by name)."""
    if type(model).__module__.startswith("tf_keras"):
        raise ModelError(f"{type(model).__name__} is a tf_keras model without a list of symbolic "
                         "inputs (subclassed, or built from a dict): tunekit wraps those for Keras "
                         "3 models only; build it from a list of tf_keras.Input, or in Keras 3")
    import keras

    signature = model.input if getattr(model, "inputs", None) else _first_call(model)

    def placeholder(spec: Any, name: str | None) -> Any:
        return keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype, name=name)

    if isinstance(signature, Mapping):
        inputs = [placeholder(spec, name) for name, spec in signature.items()]
        args: Any = dict(zip(signature, inputs))
    elif isinstance(signature, (list, tuple)):
        inputs = args = [placeholder(spec, None) for spec in signature]
    else:
        inputs = args = placeholder(signature, None)
    return keras.Model(inputs, model(args), name=model.name)


def _dict_inputs(model: Any) -> bool:
    try:
        return isinstance(model.input, Mapping)
    except AttributeError:  # a Sequential that was built but never called
        return False


def _first_call(model: Any) -> Any:
    """The input structure a subclassed model was first called with (Keras records it)."""
    try:
        from keras.src.export.export_utils import get_input_signature

        (signature,) = get_input_signature(model)
    except (ImportError, ValueError, TypeError) as exc:
        raise ModelError(f"{type(model).__name__} is a subclassed Keras model that was never "
                         "called, so its input shapes are unknown; call it once on a batch "
                         f"(model(x)) before tuning ({exc})") from exc
    return signature


def _check_names(kind: str, given: Sequence[str], real: Sequence[str]) -> None:
    wrong = [n for n in given if n not in real]
    if wrong:
        raise ModelError(f"the model has no {kind} named {', '.join(map(repr, wrong))}; its "
                         f"{kind}s are: {', '.join(real)}")


def keras_function(model: Any) -> tuple[Any, list[str], list[str]]:
    """A concrete function of a Keras model taking named inputs and returning named outputs."""
    in_names = [_tensor_name(t) for t in model.inputs]
    out_names = list(getattr(model, "output_names", None) or
                     [_tensor_name(t) for t in model.outputs])
    specs = {n: tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=n)
             for n, t in zip(in_names, model.inputs)}

    @tf.function(input_signature=[specs])
    def call(kwargs: dict[str, Any]) -> dict[str, Any]:
        values = [kwargs[n] for n in in_names]
        result = model(values[0] if len(values) == 1 else values, training=False)
        if isinstance(result, Mapping):
            result = [result[n] for n in out_names] if set(out_names) <= set(result) \
                else list(result.values())
        result = result if isinstance(result, (list, tuple)) else [result]
        return dict(zip(out_names, result))

    concrete = call.get_concrete_function()
    return (lambda **kw: concrete(kw)), in_names, out_names


def _tensor_name(tensor: Any) -> str:
    return str(getattr(tensor, "name", "input")).split(":")[0]


def load_model(path: Path) -> Any:
    """A ``.keras``/``.h5`` file as a Keras model, or a SavedModel directory."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model path {str(path)!r} does not exist")
    try:
        if path.is_dir():
            if not (path / "saved_model.pb").exists():
                raise ModelError(f"{str(path)!r} is a folder without saved_model.pb; give a "
                                 "SavedModel directory or a .keras file")
            return tf.saved_model.load(str(path))
        if path.suffix in (".keras", ".h5"):
            return tf.keras.models.load_model(str(path), compile=False)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot load {str(path)!r} ({type(exc).__name__}: {exc})") from exc
    hint = "; it is a PyTorch file: set model.framework: pytorch" \
        if path.suffix in (".pt", ".pt2", ".pth") else ""
    raise ModelError(f"{str(path)!r} is not a TensorFlow model file; give a .keras file or a "
                     f"SavedModel directory{hint}")
