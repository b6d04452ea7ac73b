"""Running TFLite flatbuffers: the interpreter, and a candidate model object around one.

LiteRT (``ai_edge_litert``) is TFLite's maintained interpreter; ``tf.lite.Interpreter`` is
deprecated and only used where LiteRT is not installed. Interpreters have static shapes, so a
:class:`TFLiteModel` keeps one per input-shape combination it has seen. A model XNNPACK cannot
prepare runs on TFLite's builtin kernels instead: a trial never fails for the delegate.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tunekit.adaptors.tensorflow.keraslike import KerasLike
from tunekit.space import QuantConfig

_log = logging.getLogger(__name__)
_told: set[bool] = set()  # non-empty once the builtin fallback was logged at INFO


#: Where a flatbuffer's kernels come from: LiteRT's default XNNPACK delegate, or TFLite's own
#: builtin kernels (used when XNNPACK refuses the model).
XNNPACK, BUILTIN = "xnnpack", "builtin"
#: Interpreters a model keeps, one per input shapes (``predict``'s last, shorter batch adds one).
MAX_INTERPRETERS = 8


def new_interpreter(blob: bytes, shapes: Sequence[Sequence[int]], *, preserve: bool = False,
                    threads: int | None = None, kernels: str = XNNPACK) -> Any:
    """An allocated interpreter of ``blob`` with its inputs resized to ``shapes``.

    ``kernels`` is :data:`XNNPACK` (LiteRT's default: the XNNPACK delegate takes the ops it
    supports) or :data:`BUILTIN` (no default delegate). XNNPACK refuses some valid int8 models
    when it prepares them, e.g. a requantization scale of 256 or more, which a first layer fed
    raw features of magnitude 1e4-1e5 produces; that refusal raises here, in allocation.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - LiteRT is in the tf extra
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
        OpResolverType = tf.lite.experimental.OpResolverType
    resolver = (OpResolverType.AUTO if kernels == XNNPACK
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, message=".*(deprecated|preserve_all_tensors)")
        interpreter = Interpreter(model_content=blob, num_threads=threads or os.cpu_count() or 1,
                                  experimental_op_resolver_type=resolver,
                                  experimental_preserve_all_tensors=preserve)
    for detail, shape in zip(interpreter.get_input_details(), shapes):
        if tuple(detail["shape"]) != tuple(shape):
            interpreter.resize_tensor_input(detail["index"], list(shape), strict=False)
    interpreter.allocate_tensors()
    return interpreter


def delegate_refused(exc: Exception) -> bool:
    """Whether ``exc`` is XNNPACK failing to prepare a model (not a fault of the model)."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("XNNPACK" in text or "Delegate" in text)


class TFLiteModel(KerasLike):
    """A tuned model: a TFLite flatbuffer with float inputs and outputs, plus its recipe.

    ``input_names`` are the FP32 model's input names in its own order, so batches feed it exactly
    as they feed the FP32 model; ``order`` is the flatbuffer's input order; ``output`` is the
    position, in the FP32 model's output order, of the output the metric sees. ``reference`` is
    the float flatbuffer it was quantized from: the FP32 side of an inspection (its tensor names
    are the candidate's). ``kernels`` says where it runs: :data:`XNNPACK` until XNNPACK refuses
    it, then :data:`BUILTIN` for good. Called and ``predict``-ed like a Keras model
    (:class:`~tunekit.adaptors.tensorflow.keraslike.KerasLike`).
    """

    def __init__(self, blob: bytes, config: QuantConfig, input_names: Sequence[str], *,
                 order: Sequence[str] | None = None, reference: bytes | None = None,
                 output: int = 0, threads: int | None = None, kernels: str = XNNPACK) -> None:
        self.blob = blob
        self.order = list(order or input_names)
        self.reference = reference if reference is not None else blob
        self.config = config
        self.input_names = list(input_names)
        self.output = output
        self.threads = threads
        self.kernels = kernels
        self._interpreters: dict[tuple[tuple[int, ...], ...], Any] = {}

    def interpreter(self, arrays: Sequence[np.ndarray], preserve: bool = False) -> Any:
        """The interpreter for these input shapes (built on first use)."""
        shapes = tuple(tuple(a.shape) for a in arrays)
        if preserve:
            return self._build(shapes, preserve=True)
        if shapes not in self._interpreters:
            if len(self._interpreters) >= MAX_INTERPRETERS:
                self._interpreters.pop(next(iter(self._interpreters)))
            self._interpreters[shapes] = self._build(shapes)
        return self._interpreters[shapes]

    def _build(self, shapes: Sequence[Sequence[int]], preserve: bool = False) -> Any:
        if self.kernels == XNNPACK:
            try:
                return new_interpreter(self.blob, shapes, preserve=preserve, threads=self.threads)
            except RuntimeError as exc:
                if not delegate_refused(exc):
                    raise
                level = logging.DEBUG if _told else logging.INFO  # once per process, then quiet
                _log.log(level, "XNNPACK cannot prepare %r (%s); it runs on TFLite's builtin "
                         "kernels", self, " ".join(str(exc).split()))
                _told.add(True)
                self.kernels = BUILTIN
        return new_interpreter(self.blob, shapes, preserve=preserve, threads=self.threads,
                               kernels=BUILTIN)

    def run(self, feed: dict[str, np.ndarray], preserve: bool = False) -> tuple[np.ndarray, Any]:
        """The chosen output on ``feed`` (input name → array), and the interpreter that ran."""
        outputs, interpreter = self._invoke(feed, preserve)
        return outputs[self.output], interpreter

    def outputs(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._invoke(inputs)[0]

    def _invoke(self, feed: Mapping[str, np.ndarray],
                preserve: bool = False) -> tuple[list[np.ndarray], Any]:
        arrays = [feed[name] for name in self.order]
        interpreter = self.interpreter(arrays, preserve)
        for detail, array in zip(interpreter.get_input_details(), arrays):
            interpreter.set_tensor(detail["index"], array.astype(detail["dtype"], copy=False))
        interpreter.invoke()
        return [np.array(interpreter.get_tensor(d["index"]), np.float32)
                for d in output_details(interpreter)], interpreter

    def __repr__(self) -> str:
        kernels = ", builtin kernels" if self.kernels == BUILTIN else ""
        return f"TFLiteModel({len(self.blob)} bytes, {self.config.summary()}{kernels})"


def output_details(interpreter: Any) -> list[dict[str, Any]]:
    """The interpreter's outputs in the model's own output order. TFLite lists them in its own
    order and names them ``<call>:<position>`` (``StatefulPartitionedCall_1:1`` first for a
    three-output Keras model), so the position suffix orders them when every name has one."""
    details = interpreter.get_output_details()
    suffixes = [d["name"].rpartition(":")[2] for d in details]
    if all(s.isdigit() for s in suffixes) and len(set(suffixes)) == len(details):
        return [d for _, d in sorted(zip(map(int, suffixes), details), key=lambda p: p[0])]
    return list(details)


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


_MLIR_ERROR = re.compile(r'error: (?:loc\(.*?fused\["[^"]*", "(?P<where>[^"@]*)[^)]*\)+: )?(?P<what>.*)')


def conversion_error(exc: Exception) -> str:
    """The first error of a TFLite conversion failure in one line, with the graph path it is
    at: the converter reports MLIR diagnostics, many lines of locations per error."""
    match = _MLIR_ERROR.search(str(exc))
    if match is None:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    where = f" (at {match['where']})" if match["where"] else ""
    return f"{match['what'].strip()}{where}"


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
