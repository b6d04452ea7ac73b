"""Running TFLite flatbuffers: the interpreter, and a candidate model object around one.

LiteRT (``ai_edge_litert``) is TFLite's maintained interpreter; ``tf.lite.Interpreter`` is
deprecated and only used where LiteRT is not installed. Interpreters have static shapes, so a
:class:`TFLiteModel` keeps one per input-shape combination it has seen.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tunekit.space import QuantConfig


def new_interpreter(blob: bytes, shapes: Sequence[Sequence[int]], *, preserve: bool = False,
                    threads: int | None = None) -> Any:
    """An allocated interpreter of ``blob`` with its inputs resized to ``shapes``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - LiteRT is in the tf extra
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, message=".*(deprecated|preserve_all_tensors)")
        interpreter = Interpreter(model_content=blob, num_threads=threads or os.cpu_count() or 1,
                                  experimental_preserve_all_tensors=preserve)
    for detail, shape in zip(interpreter.get_input_details(), shapes):
        if tuple(detail["shape"]) != tuple(shape):
            interpreter.resize_tensor_input(detail["index"], list(shape), strict=False)
    interpreter.allocate_tensors()
    return interpreter


class TFLiteModel:
    """A tuned model: a TFLite flatbuffer with float inputs and outputs, plus its recipe.

    ``input_names`` are the FP32 model's input names in its own order, so batches feed it exactly
    as they feed the FP32 model; ``order`` is the flatbuffer's input order; ``output`` is the output index the metric sees.
    ``reference`` is the float flatbuffer it was quantized from: the FP32 side of an inspection
    (its tensor names are the candidate's).
    """

    def __init__(self, blob: bytes, config: QuantConfig, input_names: Sequence[str], *,
                 order: Sequence[str] | None = None, reference: bytes | None = None,
                 output: int = 0, threads: int | None = None) -> None:
        self.blob = blob
        self.order = list(order or input_names)
        self.reference = reference if reference is not None else blob
        self.config = config
        self.input_names = list(input_names)
        self.output = output
        self.threads = threads
        self._interpreters: dict[tuple[tuple[int, ...], ...], Any] = {}

    def interpreter(self, arrays: Sequence[np.ndarray], preserve: bool = False) -> Any:
        """The interpreter for these input shapes (built on first use)."""
        shapes = tuple(tuple(a.shape) for a in arrays)
        if preserve:
            return new_interpreter(self.blob, shapes, preserve=True, threads=self.threads)
        if shapes not in self._interpreters:
            self._interpreters[shapes] = new_interpreter(self.blob, shapes, threads=self.threads)
        return self._interpreters[shapes]

    def run(self, feed: dict[str, np.ndarray], preserve: bool = False) -> tuple[np.ndarray, Any]:
        """The chosen output on ``feed`` (input name → array), and the interpreter that ran."""
        arrays = [feed[name] for name in self.order]
        interpreter = self.interpreter(arrays, preserve)
        for detail, array in zip(interpreter.get_input_details(), arrays):
            interpreter.set_tensor(detail["index"], array.astype(detail["dtype"], copy=False))
        interpreter.invoke()
        detail = interpreter.get_output_details()[self.output]
        return np.array(interpreter.get_tensor(detail["index"]), np.float32), interpreter

    def __repr__(self) -> str:
        return f"TFLiteModel({len(self.blob)} bytes, {self.config.summary()})"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence what TFLite's converter prints (the Keras export summary on stdout, MLIR notes
    on stderr, from C++ as well as Python) around one conversion; exceptions still propagate."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def input_order(blob: bytes, names: Sequence[str]) -> list[str]:
    """``names`` in the flatbuffer's input order (TFLite may reorder a model's inputs; its input
    tensors are named ``serving_default_<name>:0``)."""
    from tunekit.adaptors.tensorflow import graph

    model = graph.read(blob)
    tensors = [graph.tensor_name(model, i) for i in model.subgraphs[0].inputs]
    ordered = []
    for tensor in tensors:
        matches = [n for n in names if tensor.split(":")[0].endswith(n)]
        ordered.append(max(matches, key=len) if matches else "")
    return ordered if sorted(ordered) == sorted(names) else list(names)
