"""Calibrate once: activation ranges of every tensor, for every calibration algorithm.

TFLite's calibrator runs the float model over the user's data and writes each activation
tensor's min/max into the flatbuffer (``_experimental_calibrate_only``). That model is kept, and
each trial's int8 model is quantized from it (``mlir_quantize``, tens of milliseconds) after the
ranges of the trial's algorithm are written in, so calibration data is read once per tuning, not
once per trial.

Algorithms: ``minmax`` (TFLite's own ranges) and ``percentile`` (0.01/99.99 percentiles of the
values seen, from one extra pass that keeps every intermediate tensor).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunekit.adaptors.tensorflow import graph
from tunekit.adaptors.tensorflow.runtime import new_interpreter
from tunekit.adaptors.tensorflow.source import FloatModel
from tunekit.data import split_batch
from tunekit.errors import DataError, TrialError

_log = logging.getLogger(__name__)
ALGORITHMS = ("minmax", "percentile")
PERCENTILE = 99.99
#: Values kept per tensor for the percentile pass (a strided sample beyond this).
MAX_VALUES = 1_000_000


@dataclass
class Calibration:
    """The calibrated flatbuffer and each activation tensor's range per algorithm."""

    blob: bytes
    ranges: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)


def calibrate(source: FloatModel, batches: Sequence[Any], order: Sequence[str]) -> Calibration:
    """Run TFLite's calibrator over ``batches`` (inputs fed in the flatbuffer's ``order``) and
    the percentile pass over the same data."""
    samples = list(_samples(source, batches, order))
    if not samples:
        raise DataError("the calibration data yielded no inputs")
    converter = source.converter()
    converter.optimizations = [_tf().lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(samples)
    converter._experimental_calibrate_only = True
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            blob = converter.convert()
    except Exception as exc:
        raise TrialError(f"TFLite could not calibrate the model ({type(exc).__name__}: "
                         f"{exc})") from exc
    model = graph.read(blob)
    minmax = {i: (float(t.quantization.min[0]), float(t.quantization.max[0]))
              for i, t in enumerate(model.subgraphs[0].tensors) if _annotated(t)}
    return Calibration(blob, {"minmax": minmax,
                              "percentile": _percentiles(blob, samples, set(minmax))})


def _samples(source: FloatModel, batches: Sequence[Any],
             order: Sequence[str]) -> Iterator[list[np.ndarray]]:
    """One representative sample list per batch, in the flatbuffer's input order."""
    for batch in batches:
        feed = source.feed(split_batch(batch)[0])
        yield [feed[name] for name in order]


def _annotated(tensor: Any) -> bool:
    q = tensor.quantization
    return q is not None and q.min is not None and len(q.min) == 1 and q.max is not None


def _percentiles(blob: bytes, samples: Sequence[list[np.ndarray]],
                 tensors: set[int]) -> dict[int, tuple[float, float]]:
    """Each annotated tensor's (0.01, 99.99) percentile range over the calibration samples."""
    values: dict[int, list[np.ndarray]] = {i: [] for i in tensors}
    interpreter_cache: dict[tuple[tuple[int, ...], ...], Any] = {}
    for sample in samples:
        shapes = tuple(tuple(a.shape) for a in sample)
        if shapes not in interpreter_cache:
            interpreter_cache[shapes] = new_interpreter(blob, shapes, preserve=True)
        interpreter = interpreter_cache[shapes]
        for detail, array in zip(interpreter.get_input_details(), sample):
            interpreter.set_tensor(detail["index"], array)
        interpreter.invoke()
        for i in tensors:
            values[i].append(np.asarray(interpreter.get_tensor(i), np.float32).ravel())
    ranges = {}
    for i, chunks in values.items():
        flat = np.concatenate(chunks)
        if flat.size > MAX_VALUES:
            flat = flat[:: flat.size // MAX_VALUES + 1]
        low, high = np.percentile(flat, [100 - PERCENTILE, PERCENTILE])
        ranges[i] = (min(float(low), 0.0), max(float(high), 0.0))
    return ranges


def _tf() -> Any:
    import tensorflow as tf

    return tf
