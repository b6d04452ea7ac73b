"""The ONNX Runtime adaptor: tunes ONNX models with ONNX Runtime's own quantizer and runs them on
its CPU execution provider. The work lives in the sibling modules: :mod:`.normalize` (a model
from elsewhere in the one form the quantizer handles), :mod:`.graph` (tunable ops, who owns
each tensor), :mod:`.calibration` (ranges once per algorithm), :mod:`.build` (one candidate),
:mod:`.runtime` (sessions, feeds) and :mod:`.memory`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.adaptors.onnxrt import calibration, memory
from tunekit.adaptors.onnxrt.build import FORMATS, build
from tunekit.adaptors.onnxrt.graph import (AUTO_DYNAMIC, DYNAMIC_TUNABLE, Op, check_config,
                                           find_ops)
from tunekit.adaptors.onnxrt.normalize import normalized
from tunekit.adaptors.onnxrt.runtime import OrtModel, Settings, feeds, pick_output, to_numpy
from tunekit.data import require_batches, split_batch
from tunekit.errors import ConfigError, ModelError, TrialError
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace, int8_options

APPROACHES = ("static", "dynamic", "auto")
ALGORITHMS = ("minmax", "percentile", "entropy")
#: Metadata key of a saved model's recipe: :meth:`OnnxRuntimeAdaptor.load` checks it.
CONFIG_KEY = "tunekit.config"


@dataclass
class _Prepared:
    """The adaptor's state of one FP32 model (:meth:`~tunekit.adaptor.Adaptor.model_state`): its
    named graph, tunable ops, FP32 session and the activation ranges of each calibration
    algorithm collected so far (and where ``calibrate`` said to keep them)."""

    proto: onnx.ModelProto
    ops: dict[OpKey, Op]
    fp32: OrtModel
    ranges: dict[str, calibration.Ranges] = field(default_factory=dict)
    cache_dir: Path | None = None
    key: str | None = None
    offered: tuple[str, ...] = ()


class OnnxRuntimeAdaptor(Adaptor):
    """Tunes ONNX models (an ``onnx.ModelProto`` or a ``.onnx`` file) for ONNX Runtime on CPU:
    int8 (static, dynamic) and fp32 per op; tuned models are :class:`OrtModel` objects.

    Parameters (keyword-only; ``model.options`` in the YAML, kept in the recipe):
        format: ``qdq`` (QuantizeLinear/DequantizeLinear pairs around float ops, which ONNX
            Runtime fuses into int8 kernels: the default) or ``qoperator`` (QLinearConv etc.).
        intra_op_threads: ONNX Runtime's intra-op thread count (None: one per core).
        graph_optimization_level: ``all`` (default), ``extended``, ``basic`` or ``disabled``,
            applied when a session loads a model.
        output: the output the metric scores, by index or name (default the first).
        calibration_batches: use at most this many calibration batches (None: all).
    """

    model_suffix: ClassVar[str] = ".onnx"

    def __init__(self, *, format: str = "qdq", intra_op_threads: int | None = None,
                 graph_optimization_level: str = "all", output: int | str = 0,
                 calibration_batches: int | None = None) -> None:
        if format not in FORMATS:
            raise ConfigError("model.options.format", f"must be one of {', '.join(FORMATS)}, "
                                                      f"got {format!r}")
        self.format = format
        self.settings = Settings(intra_op_threads, graph_optimization_level)
        self.output = output
        self.calibration_batches = calibration_batches
        self._threads: int | None = None

    @classmethod
    def handles(cls, model: Any) -> bool:
        """Claims ``onnx.ModelProto`` objects, tuned :class:`OrtModel` objects and ``.onnx``
        paths; imports nothing to say no."""
        if isinstance(model, (str, Path)):
            return str(model).endswith(".onnx")
        onnx_module = sys.modules.get("onnx")
        return (onnx_module is not None and isinstance(model, onnx_module.ModelProto)) \
            or isinstance(model, OrtModel)

    # -- the FP32 model, prepared once --------------------------------------------------------
    def _prepare(self, model: Any) -> _Prepared:
        """The per-model state, made on first use and kept for the model object (or path)."""
        return self.model_state(model, lambda: self._prepared_for(model))

    def _prepared_for(self, model: Any) -> _Prepared:
        """Parse and name ``model``'s graph, find its ops, open its FP32 session."""
        if isinstance(model, OrtModel):
            proto = model.proto
        elif isinstance(model, (str, Path)):
            proto = self.load_model(Path(model))
        elif isinstance(model, onnx.ModelProto):
            proto = model
        else:
            raise ModelError(f"the onnxrt adaptor takes an onnx.ModelProto or a .onnx path, "
                             f"not a {type(model).__name__}")
        proto = normalized(proto)
        return _Prepared(proto, find_ops(proto), OrtModel(proto, self.settings))

    def _model(self, model: Any) -> OrtModel:
        return model if isinstance(model, OrtModel) else self._prepare(model).fp32

    def _threads_for(self, runner: OrtModel) -> int | None:
        """The thread count to run ``runner`` with: the one :meth:`threads` set, else the
        adaptor's own where ``runner`` was made with another (an ``OrtModel`` the user passed
        as the FP32 model has ONNX Runtime's default, one thread per core: timed beside
        one-thread candidates it ran on every core and looked up to 2x faster than it is)."""
        if self._threads is None and runner.settings.intra_op_threads != \
                self.settings.intra_op_threads:
            return self.settings.intra_op_threads
        return self._threads

    def load_model(self, path: Path) -> onnx.ModelProto:
        try:
            return onnx.load(str(path))
        except Exception as exc:
            raise ModelError(f"model.path: {str(path)!r} is not an ONNX model "
                             f"({type(exc).__name__}: {exc})") from exc

    # -- tuning space and candidates -----------------------------------------------------------
    def capabilities(self, model: Any, approach: str = "static") -> TuningSpace:
        """Per tunable op (Conv, ConvTranspose, Gemm, MatMul; Add/Concat of two activations):
        static int8 options (algorithm × scheme × activation type × granularity), dynamic int8
        for Conv/Gemm/MatMul with a weight (approach ``dynamic``; ``auto`` offers static and
        dynamic per op where dynamic has a fast kernel, Gemm/MatMul: static int8 where its
        ranges hold, dynamic where not), then fp32."""
        if approach not in APPROACHES:
            raise ConfigError("quantization.approach", f"the onnxrt adaptor offers "
                                                       f"{', '.join(APPROACHES)}, not {approach!r}")
        prepared = self._prepare(model)
        # QOperator's quantizer removes a Relu after an int8 op unless every activation is
        # symmetric, so per-op symmetric activations would lose the Relu: asym only there
        schemes = ("asym",) if self.format == "qoperator" else ("asym", "sym")
        options: dict[OpKey, tuple[OpConfig, ...]] = {}
        for key, op in prepared.ops.items():
            granularities: tuple[str | None, ...] = (None,)
            if op.weight is not None:
                granularities = ("per_channel",) if self.format == "qoperator" \
                    else ("per_channel", "per_tensor")
            int8 = int8_options(["static"], schemes, granularities, ALGORITHMS,
                                ("uint8", "int8")) if approach != "dynamic" else []
            if op.weight is not None and key.type in (
                    AUTO_DYNAMIC if approach == "auto" else
                    DYNAMIC_TUNABLE if approach == "dynamic" else ()):
                int8 += int8_options(["dynamic"], (), ("per_channel", "per_tensor"), ())
            if int8:
                options[key] = (*int8, OpConfig("fp32"))
        if not options:
            raise ModelError(f"the ONNX model has no op the {approach} approach can quantize "
                             "(Conv, ConvTranspose, Gemm, MatMul, Add/Concat of activations)")
        return TuningSpace(options)

    def calibrate(self, model: Any, space: TuningSpace, calib_data: Iterable[DataBatch], *,
                  cache_dir: Path | None = None) -> None:
        """Collect the ranges the default config needs (see :mod:`.calibration`); another
        algorithm's are collected the first time a trial asks for it, once per tuning. With
        ``cache_dir`` they are kept there for a resumed tuning."""
        prepared = self._prepare(model)
        prepared.cache_dir = cache_dir
        prepared.offered = tuple(calibration.algorithms_of(
            option for op in space.ops for option in space.options[op]))
        configs = list(space.default().ops.values())
        if any(c.approach == "static" for c in configs):
            self._ranges(prepared, calibration.algorithms_of(configs), calib_data)

    def _ranges(self, prepared: _Prepared, algorithms: Sequence[str],
                calib_data: Iterable[DataBatch] | None) -> dict[str, calibration.Ranges]:
        missing = [a for a in algorithms if a not in prepared.ranges]
        if any(a != "minmax" for a in missing):  # one pass serves every histogram algorithm
            missing += [a for a in prepared.offered
                        if a != "minmax" and a not in prepared.ranges and a not in missing]
        if missing:
            batches = require_batches(calib_data, "the calibration data")
            batches = batches[: self.calibration_batches or len(batches)]
            session = prepared.fp32.session()
            inputs = [feeds(session, split_batch(b)[0]) for b in batches]
            if prepared.cache_dir is not None and prepared.key is None:
                prepared.key = calibration.fingerprint(prepared.proto, inputs)
            prepared.ranges.update(calibration.collect(prepared.proto, inputs, missing,
                                                       prepared.cache_dir, prepared.key))
        return prepared.ranges

    def quantize(self, model: Any, config: QuantConfig,
                 calib_data: Iterable[DataBatch]) -> OrtModel:
        prepared = self._prepare(model)
        check_config(prepared.ops, list(config.ops))
        ops = {key: config.ops.get(key, OpConfig("fp32")) for key in prepared.ops}
        ranges: Mapping[str, calibration.Ranges] = {}
        if any(c.approach == "static" for c in ops.values()):
            ranges = self._ranges(prepared, calibration.algorithms_of(ops.values()), calib_data)
        try:
            proto = build(prepared.proto, prepared.ops, ops, ranges, self.format)
            candidate = OrtModel(proto, self.settings)
            candidate.session()  # a graph ONNX Runtime cannot load fails this trial, now
        except Exception as exc:
            raise TrialError(f"ONNX Runtime could not build {config.summary()}: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
        return candidate

    # -- running models ------------------------------------------------------------------------
    def predict(self, model: Any,
                data: Iterable[DataBatch]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        runner = self._model(model)
        names = [o.name for o in runner.session(self._threads_for(runner)).get_outputs()]
        for batch in data:
            inputs, labels = split_batch(batch)
            out = pick_output(runner.run(inputs, self._threads_for(runner)), names,
                              self.output)
            out = out.astype(np.float32) if np.issubdtype(out.dtype, np.floating) else out
            yield out, (None if labels is None else to_numpy(labels))

    def run_batch(self, model: Any, inputs: Any) -> list[np.ndarray]:
        runner = self._model(model)
        return runner.run(inputs, self._threads_for(runner))

    @contextlib.contextmanager
    def threads(self, count: int | None) -> Iterator[int | None]:
        """Sessions made in the body use ``count`` intra-op threads (ONNX Runtime fixes the
        count when a session is created, so each count gets its own session)."""
        previous = self._threads
        self._threads = count
        try:
            yield count if count is not None else self.settings.intra_op_threads
        finally:
            self._threads = previous

    def peak_memory(self, model: Any, inputs: Sequence[Any]) -> int:
        runner = self._model(model)
        return memory.peak_memory(runner, inputs, self._threads_for(runner))

    def model_size(self, model: Any) -> int:
        """Bytes of the serialized model (int8 weights: about a quarter of FP32's)."""
        return self._model(model).proto.ByteSize()

    def inspect(self, model: Any, candidate: Any, ops: Sequence[OpKey],
                data: Iterable[DataBatch]) -> Mapping[OpKey, tuple[np.ndarray, np.ndarray]]:
        """Per op, its float output in the FP32 model and in ``candidate``: the int8 op's output
        before it is quantized for the next op (QDQ; where ONNX Runtime folded a Relu into the
        op, both sides are taken after the Relu), or dequantized from it (QOperator)."""
        prepared = self._prepare(model)
        check_config(prepared.ops, ops)
        proto = self._model(candidate).proto
        names = {op: _output_of(proto, prepared.ops[op]) for op in ops}
        producer = {o: n.op_type for n in prepared.proto.graph.node for o in n.output}
        fp32_names = {op: name if name in producer else prepared.ops[op].node.output[0]
                      for op, name in names.items()}
        # a folded Relu's output name now labels the op's raw output, whose negatives only the
        # next QuantizeLinear clips: clip them here too, or every such op reads ~100 % error
        # (the ranking then named conv2, not the culprit conv3, first on culprit-middle)
        folded = {op for op, name in fp32_names.items() if producer.get(name) == "Relu"}
        batches = list(data)[:4]
        fp32 = _intermediates(prepared.proto, list(fp32_names.values()), batches, self.settings)
        quantized = _intermediates(proto, list(names.values()), batches, self.settings)
        return {op: (fp32[fp32_names[op]], np.maximum(quantized[names[op]], 0)
                     if op in folded else quantized[names[op]]) for op in ops}

    def optimize_graph(self, model: Any, precisions: Sequence[str], passes: Any,
                       example_batch: DataBatch | None, tune: Any) -> Any:
        """ONNX Runtime's optimization levels as passes (see :mod:`.passes`)."""
        from tunekit.adaptors.onnxrt.passes import optimize

        return optimize(self._prepare(model).proto, self.settings, precisions, passes)

    # -- saving and loading --------------------------------------------------------------------
    def save(self, candidate: Any, config: QuantConfig, path: Path) -> None:
        """A plain ``.onnx`` file (no pickle) whose metadata holds the recipe's config."""
        proto = onnx.ModelProto()
        proto.CopyFrom(self._model(candidate).proto)
        entry = next((p for p in proto.metadata_props if p.key == CONFIG_KEY), None) \
            or proto.metadata_props.add()
        entry.key, entry.value = CONFIG_KEY, config.to_json()
        onnx.save_model(proto, str(path))

    def load(self, model: Any, config: QuantConfig, path: Path) -> OrtModel:
        proto = self.load_model(Path(path))
        saved = next((p.value for p in proto.metadata_props if p.key == CONFIG_KEY), None)
        if saved is None:
            raise ModelError(f"{path} was not saved by the onnxrt adaptor (no {CONFIG_KEY} "
                             "metadata)")
        if QuantConfig.from_json(saved) != config:
            raise ModelError(f"{path} holds a model built with another config than the "
                             "recipe's; keep the model file and best_config.json together")
        return OrtModel(proto, self.settings)

    def __getstate__(self) -> dict[str, Any]:
        """The options only: per-model sessions and ranges (the base class drops them) and the
        thread count of a ``threads`` block stay in the process that made them."""
        return {k: v for k, v in super().__getstate__().items() if k != "_threads"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _threads=None)


def _output_of(proto: onnx.ModelProto, op: Op) -> str:
    """The float output of ``op``'s node in a candidate: the same node name (QDQ, float ops,
    dynamic Gemms), the op's own output tensor where another node writes it (dynamic int8: the
    Mul that rescales ConvInteger/MatMulInteger's int32 result; QOperator: a DequantizeLinear
    for a float consumer), or ONNX Runtime's ``<name>_quant`` node whose ``X_quantized`` output
    stands for ``X``."""
    same = next((node for node in proto.graph.node if node.name == op.node.name), None)
    if same is not None:
        return same.output[0]
    if any(op.node.output[0] in node.output for node in proto.graph.node):
        return op.node.output[0]
    for node in proto.graph.node:
        if node.name == f"{op.node.name}_quant":
            return node.output[0].removesuffix("_quantized")
    raise ModelError(f"the candidate has no node {op.node.name!r} to inspect")


def _intermediates(proto: onnx.ModelProto, names: Sequence[str], batches: Sequence[DataBatch],
                   settings: Settings) -> dict[str, np.ndarray]:
    """Tensors ``names`` of ``proto`` over ``batches`` (stacked), exposed as graph outputs;
    QOperator's ``X_quantized`` tensors are dequantized back to ``X``."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(proto)
    graph = exposed.graph
    produced = {o for n in graph.node for o in n.output}
    for name in names:
        if name not in produced and f"{name}_quantized" in produced:
            graph.node.append(onnx.helper.make_node(
                "DequantizeLinear", [f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"],
                [name], name=f"{name}_tunekit_inspect"))
        elif name not in produced:
            raise ModelError(f"the candidate has no tensor {name!r} to inspect")
    existing = {o.name for o in graph.output}
    graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in existing)
    runner = OrtModel(exposed, Settings(settings.intra_op_threads, "basic"))
    session = runner.session()
    index = {o.name: i for i, o in enumerate(session.get_outputs())}
    runs = [runner.run(split_batch(b)[0]) for b in batches]
    return {n: np.concatenate([r[index[n]] for r in runs]).astype(np.float32) for n in names}
