"""Running ONNX models: the :class:`OrtModel` wrapper, input feeds, and session settings."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from tunekit.errors import ConfigError, DataError

#: ``graph_optimization_level`` option values → ONNX Runtime's levels.
LEVELS: Mapping[str, ort.GraphOptimizationLevel] = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
           "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
           "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


@dataclass(frozen=True)
class Settings:
    """How sessions are made: intra-op threads (None: ONNX Runtime's default, one per core) and
    the graph optimization level applied when a session loads a model."""

    intra_op_threads: int | None = None
    graph_optimization_level: str = "all"

    def __post_init__(self) -> None:
        if self.graph_optimization_level not in LEVELS:
            raise ConfigError("model.options.graph_optimization_level",
                              f"must be one of {', '.join(LEVELS)}, got "
                              f"{self.graph_optimization_level!r}")
        threads = self.intra_op_threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ConfigError("model.options.intra_op_threads",
                              f"must be a positive integer or null, got {threads!r}")

    def session_options(self, threads: int | None = None) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.graph_optimization_level = LEVELS[self.graph_optimization_level]
        count = threads if threads is not None else self.intra_op_threads
        if count is not None:
            options.intra_op_num_threads = count
        options.log_severity_level = 3
        return options


class OrtModel:
    """An ONNX model and the ONNX Runtime sessions that run it: the onnxrt adaptor's candidates
    and tuned models. ``proto`` is the ``onnx.ModelProto``; ``model(inputs)`` returns the first
    output (``run`` returns them all); ``save(path)`` writes a ``.onnx`` file."""

    def __init__(self, proto: onnx.ModelProto, settings: Settings | None = None) -> None:
        self.proto = proto
        self.settings = settings or Settings()
        self._sessions: dict[int | None, ort.InferenceSession] = {}

    def session(self, threads: int | None = None) -> ort.InferenceSession:
        """The session for ``threads`` intra-op threads (None: the settings' count), made once."""
        if threads not in self._sessions:
            self._sessions[threads] = ort.InferenceSession(
                self.proto.SerializeToString(), self.settings.session_options(threads),
                providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    def run(self, inputs: Any, threads: int | None = None) -> list[np.ndarray]:
        session = self.session(threads)
        return session.run(None, feeds(session, inputs))

    def __call__(self, inputs: Any) -> np.ndarray:
        return self.run(inputs)[0]

    def save(self, path: str | Path) -> None:
        onnx.save_model(self.proto, str(path))

    def __getstate__(self) -> dict[str, Any]:
        return {"proto": self.proto.SerializeToString(), "settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(onnx.load_from_string(state["proto"]), state["settings"])


def to_numpy(value: Any) -> np.ndarray:
    """A numpy array from numpy data, a torch tensor or a TensorFlow tensor (no import needed)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    return np.asarray(value)


def feeds(session: ort.InferenceSession, inputs: Any) -> dict[str, np.ndarray]:
    """A batch's inputs as the session's feed dict: a dict by input name, a tuple/list in input
    order, or one array for a one-input model; each cast to the input's declared type."""
    specs = session.get_inputs()
    if isinstance(inputs, Mapping):
        given = dict(inputs)
    elif isinstance(inputs, (tuple, list)):
        given = {s.name: v for s, v in zip(specs, inputs)}
    else:
        given = {specs[0].name: inputs}
    missing = [s.name for s in specs if s.name not in given]
    if missing:
        raise DataError(f"the ONNX model's inputs {missing} are not in the batch; give a dict "
                        f"keyed by input name (inputs: {[s.name for s in specs]})")
    fed = {s.name: to_numpy(given[s.name]).astype(_DTYPES.get(s.type, np.float32), copy=False)
           for s in specs}
    for spec in specs:
        _check_shape(spec.name, spec.shape, fed[spec.name].shape)
    return fed


def _check_shape(name: str, declared: Sequence[Any], shape: Sequence[int]) -> None:
    """One line when an input's size differs from a fixed dimension of the model's (ONNX
    Runtime's own message names neither the sizes nor the fix): typically a model exported
    without a dynamic batch axis, fed another batch size than the export's. Another rank is
    left to ONNX Runtime: an input of unknown shape declares none (``[]``, as a scalar)."""
    wrong = [(axis, size) for axis, size in enumerate(declared)
             if isinstance(size, int) and len(shape) == len(declared) and shape[axis] != size]
    if wrong:
        axis, size = wrong[0]
        fix = ("export the model with a dynamic batch axis (torch.onnx.export(..., dynamic_axes="
               f"{{{name!r}: {{0: 'batch'}}}}) or dynamic_shapes with dynamo=True), or batch the "
               "data to the exported size") if axis == 0 else \
            "give the input in the shape the model was exported with"
        raise DataError(f"the ONNX model's input {name!r} has shape {list(declared)}: dimension "
                        f"{axis} is fixed at {size}, the batch gives {list(shape)}; fix: {fix}")


def pick_output(outputs: Sequence[np.ndarray], names: Sequence[str], output: int | str) -> Any:
    """The output the metric scores: by index or by name (adaptor option ``output``)."""
    if isinstance(output, str):
        if output not in names:
            raise ConfigError("model.options.output", f"the model has no output {output!r}; "
                                                      f"its outputs: {', '.join(names)}")
        return outputs[list(names).index(output)]
    return outputs[output]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence ONNX Runtime's quantizer: its progress prints and its advice on the root logger
    ("consider pre-processing"), which would repeat on every trial."""
    def chatty(record: logging.LogRecord) -> bool:
        return not ("onnxruntime" in record.pathname and record.levelno <= logging.WARNING)

    root = logging.getLogger()
    root.addFilter(chatty)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(chatty)
