"""Tuned models that are called the way the Keras model they replace is called.

An ``eval_func`` is written for the FP32 Keras model: ``model(x)`` or ``model.predict(x,
batch_size=...)``. tunekit hands that same function every candidate, and users keep the tuned
model where the Keras model was, so candidates (TFLite flatbuffers, bf16 Keras clones) answer both
calls through :class:`KerasLike`: inputs as one array, a list/tuple in the model's input order or a
dict keyed by the Keras input names; numpy or tf arrays; any batch size; numpy float32 results
(one array, or a list in the model's output order when it has several outputs).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import numpy as np

from tunekit.errors import ModelError, NotSupportedError

#: Keras' default ``predict`` batch size.
DEFAULT_BATCH = 32


class KerasLike(abc.ABC):
    """``__call__`` and ``predict`` with Keras' calling conventions over :meth:`outputs`."""

    input_names: list[str]

    @abc.abstractmethod
    def outputs(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Every output of one call on ``inputs`` (input name → array), as float32 numpy, in the
        FP32 model's output order."""

    def __call__(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """One call on one batch, like ``keras_model(x)`` (``training``/``mask`` are accepted
        and ignored: a tuned model has no training mode), but returning numpy."""
        return _unwrap(self.outputs(feed(inputs, self.input_names)))

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = "auto",
                steps: int | None = None, callbacks: Any = None) -> Any:
        """All outputs over ``x``, like ``keras_model.predict``: arrays (or a list/dict of
        them) are cut into batches of ``batch_size`` (default 32); a ``tf.data.Dataset`` or
        other iterable of batches is run batch by batch (``(x, y)`` elements use ``x``, as
        Keras does), at most ``steps`` batches. ``verbose``/``callbacks`` are ignored."""
        if _is_stream(x):
            batches = (_features(element) for element in islice(iter(x), steps))
        else:
            batches = _slices(feed(x, self.input_names), batch_size or DEFAULT_BATCH)
        chunks = [self.outputs(feed(batch, self.input_names)) for batch in batches]
        if not chunks:
            raise ValueError("predict got no data (an empty dataset or zero samples)")
        return _unwrap([np.concatenate(parts) for parts in zip(*chunks)])

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """Refused with the way out: ``keras_model.evaluate`` reads the loss and metrics
        ``compile`` gave the FP32 model, which a tuned model does not carry."""
        raise NotSupportedError(
            f"{type(self).__name__} has no evaluate(): a tuned model carries no compiled loss "
            "or metrics; score model.predict(x) in the eval_func (e.g. np.argmax(model.predict"
            "(x), 1) == y), or give evaluation.metric with evaluation.data")


def _unwrap(outputs: list[np.ndarray]) -> Any:
    return outputs[0] if len(outputs) == 1 else outputs


def _is_stream(x: Any) -> bool:
    """Whether ``x`` yields batches (dataset, generator, Keras PyDataset) rather than being the
    inputs themselves (array, tensor, list/tuple/dict of them)."""
    if isinstance(x, (Mapping, list, tuple, str, bytes)) or hasattr(x, "shape"):
        return False
    return isinstance(x, Iterable) or hasattr(x, "__getitem__") and hasattr(x, "__len__")


def _features(element: Any) -> Any:
    """The inputs of one dataset element: Keras reads a 2- or 3-tuple as (x, y[, weights])."""
    if isinstance(element, tuple) and len(element) in (2, 3):
        return element[0]
    return element


def _slices(arrays: Mapping[str, np.ndarray], size: int) -> Iterator[dict[str, np.ndarray]]:
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    total = len(next(iter(arrays.values())))
    for start in range(0, total, size):
        yield {name: array[start:start + size] for name, array in arrays.items()}


def feed(inputs: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Map a batch's inputs (array, tuple/list in input order, or dict by name) to names."""
    if isinstance(inputs, Mapping):
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise ModelError(f"the batch's inputs {sorted(inputs)} do not match the model's: "
                             f"{', '.join(names)} (dict batches are keyed by input name)")
        values = [inputs[n] for n in names]
    elif isinstance(inputs, (tuple, list)):
        values = list(inputs)
    else:
        values = [inputs]
    if len(values) != len(names):
        raise ModelError(f"the batch gives {len(values)} input(s), the model takes {len(names)}: "
                         f"{', '.join(names)}")
    return {n: np.asarray(v, dtype=np.float32) if _is_float(v) else np.asarray(v)
            for n, v in zip(names, values)}


def _is_float(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return True
    return bool(np.issubdtype(np.dtype(getattr(dtype, "as_numpy_dtype", dtype)), np.floating))
