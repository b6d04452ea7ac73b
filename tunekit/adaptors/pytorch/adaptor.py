"""The PyTorch adaptor: the plugin the core talks to; the work lives in the sibling modules.

Backends: ``fx`` (torch.ao FX graph mode, fused, real int8 kernels, no compile), ``eager``
(module swapping: any model), ``pt2e`` (torch.export + torchao, compiled by Inductor when
deployed: the fastest, see :mod:`.pt2e_backend`), ``auto`` (trials by FX when the model traces
and its fused graph reproduces the model's outputs, eager otherwise, a config FX fails to build
retried eagerly; then the accepted config is deployed by the fastest backend that builds it, see
:mod:`.deployment`). The backend that built a candidate is recorded on it (``_tunekit_backend``)
and in its saved file, so inspecting and reloading use the same one. FX graph mode is imported
only when used, so the adaptor works on a torch without it (PT2E and eager remain).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.adaptors.pytorch import deployment, eager_backend, memory, pt2e_backend, serialize
from tunekit.adaptors.pytorch.calibration import ObserverStore, fingerprint, kept
from tunekit.adaptors.pytorch.capabilities import capabilities, find_ops
from tunekit.adaptors.pytorch.graph_optimization import optimize as graph_opt
from tunekit.adaptors.pytorch.inspection import capture
from tunekit.adaptors.pytorch.prepack import PackedWeights
from tunekit.adaptors.pytorch.qconfig import is_static
from tunekit.adaptors.pytorch.runtime import (
    BACKEND_ATTR,
    checked_build,
    describe,
    call_model,
    eval_mode,
    fx_problem,
    labels_to_numpy,
    outputs_for_metric,
    quiet_torch_ao,
    use_x86_engine,
)
from tunekit.data import require_batches, split_batch
from tunekit.errors import ConfigError, ModelError, NotSupportedError, TrialError
from tunekit.space import OpKey, QuantConfig, TuningSpace

_log = logging.getLogger(__name__)
BACKENDS = ("auto", "fx", "eager", "pt2e")


@dataclass
class _ModelState:
    """What the adaptor derives from one FP32 model (its
    :meth:`~tunekit.adaptor.Adaptor.model_state`): the fused FX graph, the backend ``auto``
    chose, the statistics of :meth:`PyTorchAdaptor.calibrate` with the fused graph they were
    collected on, the PT2E export and observers, and the packed int8 weights of its trials."""

    fx: Any = None  # fx_backend.FusedGraphCache, made on first use (FX is imported lazily)
    verdict: str | None = None
    store: tuple[Any, ObserverStore] | None = None
    pt2e: pt2e_backend.Builder = field(default_factory=pt2e_backend.Builder)
    packed: PackedWeights = field(default_factory=PackedWeights)


class PyTorchAdaptor(Adaptor):
    """Tunes ``torch.nn.Module`` models on CPU: int8 (static/dynamic), bf16 and fp32 per op.

    Parameters (keyword-only, stored as given):
        backend: ``auto`` | ``fx`` | ``eager`` | ``pt2e`` (see the module docstring).
        calibration_batches: use at most this many calibration batches (``None``: all).
        allow_pickle: let :meth:`load_model` unpickle a whole ``nn.Module`` (runs code from the
            file; off by default).
        int8_followers: run the glue between int8 ops (activations, gates, pooling, adds,
            multiplies, concats) in int8 as well, so an int8 model has no float islands (FX
            backend; see :mod:`tunekit.adaptors.pytorch.followers`).
        pt2e_min_params: under ``auto``, PT2E is built and compiled at deployment only for
            models with at least this many parameters (0: always): a 10-60 s compile is worth
            it for real models, not for the toy models of a test suite.
    """

    model_suffix: ClassVar[str] = ".pt"
    #: model files this adaptor claims (state_dict/whole-module files, exported programs)
    file_suffixes: ClassVar[tuple[str, ...]] = (".pt", ".pth", ".pt2")

    @classmethod
    def handles(cls, model: Any) -> bool:
        """Any ``nn.Module`` (a user's own subclass, a HuggingFace model, a ``GraphModule``)
        and ``.pt``/``.pth``/``.pt2`` files."""
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            return path.suffix in cls.file_suffixes and not path.is_dir()
        torch_module = sys.modules.get("torch")
        return torch_module is not None and isinstance(model, torch_module.nn.Module)

    def forward_signature(self, model: Any) -> inspect.Signature | None:
        """``model.forward``'s signature (what a batch's inputs are bound to), None if torch
        cannot give one (a scripted module's builtin forward)."""
        try:
            return inspect.signature(model.forward)
        except (TypeError, ValueError, AttributeError):
            return None

    def __init__(self, *, backend: str = "auto", calibration_batches: int | None = None,
                 allow_pickle: bool = False, int8_followers: bool = True,
                 pt2e_min_params: int = 1_000_000) -> None:
        self.backend = backend
        self.calibration_batches = calibration_batches
        self.allow_pickle = allow_pickle
        self.int8_followers = int8_followers
        self.pt2e_min_params = pt2e_min_params

    # -- tuning space and candidates -----------------------------------------------------------
    def capabilities(self, model: Any, approach: str = "static") -> TuningSpace:
        if approach == "qat":
            return _fx_module("qat").space(capabilities(model, "static"))
        space = capabilities(model, approach)
        return pt2e_backend.restrict(space) if self.backend == "pt2e" else space

    def train_quantized(self, model: Any, config: QuantConfig, train_func: Callable[[Any], Any],
                        calib_data: Iterable[DataBatch]) -> Any:
        """Quantization-aware training through FX (see :mod:`.qat`); the result is an FX
        candidate like :meth:`quantize`'s, so it saves, loads and inspects the same way.

        Needs a model torch.fx can trace: QAT has no eager path here. One calibration batch, if
        given, is run through the result so a broken graph fails as this trial's error.
        """
        self._check(model, config)
        try:
            with quiet_torch_ao():
                fused = self._fused(model)
        except Exception as exc:
            raise NotSupportedError(
                f"quantization-aware training needs a model torch.fx can trace, and "
                f"{type(model).__name__} is not ({type(exc).__name__}: {exc}); use "
                "quantization.approach: static") from exc
        batches = list(calib_data or [])[:1]
        return checked_build(lambda: _fx_module("qat").train(fused, config, train_func,
                                                             followers=self.int8_followers),
                             batches, "fx", f"quantization-aware training of {describe(config)}")

    def calibrate(self, model: Any, space: TuningSpace, calib_data: Iterable[DataBatch], *,
                  cache_dir: Path | None = None) -> None:
        """Collect every option's activation statistics in one pass (FX backend); later
        ``quantize`` calls for ``model`` take them instead of running the calibration data.

        With ``cache_dir`` (the tuner passes the workspace's ``calibration/`` folder) the
        statistics are read from there when a previous run left them for the same model, data
        and space, and written there otherwise (see :mod:`.calibration`)."""
        batches = require_batches(calib_data, "the calibration data")
        if self.calibration_batches is not None:
            batches = batches[: self.calibration_batches]
        backend = self._choose_backend(model, batches[:1])
        if backend == "pt2e":
            self._build_checked("pt2e", model, space.default(), batches)  # fills the cache
        if backend != "fx":
            return
        fused = self._fused(model)
        with quiet_torch_ao():
            watch = ObserverStore.observed(
                _fx_module("fx_backend").prepare(fused, space.default(),
                                                 followers=self.int8_followers))
            path = None
            if cache_dir is not None:
                key = fingerprint(model, fused, space, batches, watch)
                path = Path(cache_dir) / f"observers-{key[:24]}.pt"
            store = kept(path, space, lambda: ObserverStore.collect(fused, space, batches, watch))
        self._state(model).store = (fused, store)

    def _state(self, model: nn.Module) -> _ModelState:
        """``model``'s state (see :class:`_ModelState`), empty until its parts are first used."""
        return self.model_state(model, _ModelState)

    def _store(self, model: nn.Module) -> ObserverStore | None:
        """The statistics of :meth:`calibrate`, if they belong to the current fused graph."""
        entry = self._state(model).store
        return entry[1] if entry is not None and entry[0] is self._fused(model) else None

    def quantize(self, model: Any, config: QuantConfig, calib_data: Iterable[DataBatch]) -> Any:
        """A new model in ``config``'s precisions; ``model`` is not modified (deep-copied)."""
        self._check(model, config)
        batches = self._calib_batches(config, calib_data)
        backend = self._choose_backend(model, batches[:1])
        try:
            return self._build_checked(backend, model, config, batches)
        except TrialError as fx_error:
            if backend != "fx" or self.backend != "auto":
                raise
            _log.warning("FX could not build this config, retrying with the eager backend: %s",
                         fx_error)
            try:
                return self._build_checked("eager", model, config, batches)
            except TrialError as eager_error:
                raise TrialError(f"{eager_error} (the FX backend failed first: {fx_error})"
                                 ) from eager_error

    def _check(self, model: Any, config: QuantConfig) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError("adaptor.backend", f"unknown backend {self.backend!r}; expected "
                              f"one of {', '.join(BACKENDS)}")
        if type(self.pt2e_min_params) is not int or self.pt2e_min_params < 0:
            raise ConfigError("model.options.pt2e_min_params",
                              f"must be an integer ≥ 0, got {self.pt2e_min_params!r}")
        unknown = sorted(set(config.ops) - set(find_ops(model)))
        if unknown:
            raise ModelError("the config names ops this model does not have: "
                             + ", ".join(map(str, unknown[:5])))

    def _calib_batches(self, config: QuantConfig,
                       calib_data: Iterable[DataBatch]) -> list[DataBatch]:
        needed = any(is_static(c) for c in config.ops.values())
        if needed:
            batches = require_batches(calib_data, "the calibration data")
        else:  # dynamic/bf16/fp32 need none, but one batch lets the candidate be smoke-tested
            batches = list(calib_data) if calib_data is not None else []
        return batches if self.calibration_batches is None else batches[: self.calibration_batches]

    def _build_checked(self, backend: str, model: nn.Module, config: QuantConfig,
                       batches: Sequence[DataBatch]) -> nn.Module:
        """Build, then run one batch so a broken graph fails here as this config's TrialError."""
        return checked_build(lambda: self._build(backend, model, config, batches), batches,
                             backend, f"the {backend} candidate for {describe(config)}")

    def _build(self, backend: str, model: nn.Module, config: QuantConfig,
               batches: Sequence[DataBatch]) -> nn.Module:
        if backend == "pt2e":
            return self._state(model).pt2e.build(model, config, batches)
        if backend == "fx":
            return _fx_module("fx_backend").build(self._fused(model), config, batches,
                                    followers=self.int8_followers, store=self._store(model),
                                    packed=self._state(model).packed)
        return eager_backend.build(model, config, batches)

    # -- backend choice ------------------------------------------------------------------------
    def _fused(self, model: nn.Module) -> Any:
        """``model`` traced and fused by FX (made once per model; raises if it cannot trace)."""
        state = self._state(model)
        if state.fx is None:
            state.fx = _fx_module("fx_backend").FusedGraphCache()
        return state.fx.get(model)

    def _choose_backend(self, model: nn.Module, probe: Sequence[DataBatch]) -> str:
        """``fx``/``eager`` as configured; for ``auto``, FX if it traces and is faithful."""
        if self.backend != "auto":
            if self.backend == "pt2e":
                problem = self._state(model).pt2e.problem(model, probe)
                if problem:
                    raise ModelError(f"backend pt2e: {problem}; use backend 'auto', 'fx' or "
                                     "'eager'")
            if self.backend == "fx":
                try:
                    with quiet_torch_ao():
                        self._fused(model)
                except Exception as exc:
                    raise ModelError(f"torch.fx cannot trace {type(model).__name__} ({exc}); "
                                     "use backend 'auto' or 'eager'") from exc
            return self.backend
        state = self._state(model)
        if state.verdict is None:
            reason = fx_problem(model, lambda: self._fused(model), probe)
            if reason:
                _log.warning("using the eager backend for %s: %s", type(model).__name__, reason)
            state.verdict = "eager" if reason else "fx"
        return state.verdict

    # -- running -------------------------------------------------------------------------------
    def predict(self, model: Any, data: Iterable[DataBatch]) -> Iterator[tuple[np.ndarray, Any]]:
        """Per batch: (first output tensor or ``logits`` as float32 numpy, labels or None);
        per-sample records (a list of dicts or strings) pass through with tensors as numpy.

        Runs in eval mode under ``inference_mode``; a model handed over in training mode gets
        its modes back afterwards.
        """
        with eval_mode(model), torch.inference_mode():
            for batch in data:
                inputs, labels = split_batch(batch)
                yield outputs_for_metric(call_model(model, inputs)), labels_to_numpy(labels)

    def run_batch(self, model: Any, inputs: Any) -> Any:
        """One call; a PT2E candidate is deployed (compiled) first: timed uncompiled it would
        measure the emulation of int8, not the model the user gets."""
        if isinstance(model, pt2e_backend.PT2EModel):
            model.deploy()
        with eval_mode(model), torch.inference_mode():
            return call_model(model, inputs)

    @contextlib.contextmanager
    def threads(self, count: int | None) -> Iterator[int | None]:
        """``torch.set_num_threads(count)`` for the body, the previous count restored after."""
        previous = torch.get_num_threads()
        if count is not None:
            torch.set_num_threads(count)
        try:
            yield torch.get_num_threads()
        finally:
            torch.set_num_threads(previous)

    def peak_memory(self, model: Any, inputs: Sequence[Any]) -> int:
        """Measured in a fresh process (see :mod:`tunekit.adaptors.pytorch.memory`)."""
        return memory.peak_memory(model, inputs)

    def inspect(self, model: Any, candidate: Any, ops: Sequence[OpKey],
                data: Iterable[DataBatch]) -> Mapping[OpKey, tuple[np.ndarray, np.ndarray]]:
        """Per op, (FP32 output, candidate output) on the same batches; ops that never run are
        left out. The FP32 side is the fused FP32 graph for FX candidates."""
        batches, backend = list(data), getattr(candidate, BACKEND_ATTR, "eager")
        if backend == "pt2e":
            return {}  # an exported graph has no modules left to hook: every op is skipped
        reference = self._fused(model) if backend == "fx" else model
        names = [op.name for op in ops]
        with quiet_torch_ao():
            expected = capture(reference, names, batches)
            got = capture(candidate, names, batches)
        return {op: (expected[op.name], got[op.name]) for op in ops
                if op.name in expected and op.name in got}

    def hessian_trace(self, model: Any, ops: Sequence[OpKey], data: Iterable[DataBatch],
                      loss: Any = None) -> Mapping[OpKey, float]:
        """Hutchinson Hessian traces per op weight of the FP32 ``model`` (see hessian.py)."""
        from tunekit.adaptors.pytorch.hessian import hessian_traces

        return hessian_traces(model, ops, data, loss)

    # -- files ---------------------------------------------------------------------------------
    def load_model(self, path: Path) -> Any:
        return serialize.load_model_file(Path(path), self.allow_pickle)

    def save(self, candidate: Any, config: QuantConfig, path: Path) -> None:
        if isinstance(candidate, pt2e_backend.PT2EModel):
            serialize.save_program(candidate, config, Path(path))
            return
        serialize.save_candidate(candidate, getattr(candidate, BACKEND_ATTR, "eager"), config,
                                 Path(path))

    def load(self, model: Any, config: QuantConfig, path: Path) -> Any:
        """Rebuild the candidate's structure without calibration, then restore its tensors; a
        PT2E candidate is read whole from its ``torch.export`` archive and compiles on its first
        call."""
        if serialize.is_program(Path(path)):
            loaded = serialize.load_program(Path(path), config).deploy()
            setattr(loaded, BACKEND_ATTR, "pt2e")
            return loaded
        payload = serialize.read_candidate(Path(path), config)
        backend = payload["backend"]
        use_x86_engine()
        try:
            with quiet_torch_ao(uncalibrated=True):
                candidate = self._build(backend, model, config, [])
        except Exception as exc:
            raise ModelError(f"cannot rebuild the {backend} model saved in {path}: "
                             f"{type(exc).__name__}: {exc}") from exc
        serialize.restore(candidate, payload, Path(path))
        setattr(candidate, BACKEND_ATTR, backend)
        return candidate.eval()

    def model_size(self, model: Any) -> int:
        return serialize.state_bytes(model)

    def candidate_details(self, candidate: Any) -> Mapping[str, float]:
        """``time.compile_s``: the Inductor compile of a PT2E candidate that was timed."""
        compile_s = getattr(candidate, "compile_s", None)
        return {} if compile_s is None else {"time.compile_s": round(compile_s, 3)}

    def optimize_graph(self, model: Any, precisions: Sequence[str], passes: Any,
                       example_batch: DataBatch | None,
                       tune: Callable[[Any, Any], Any] | None) -> Any:
        """The ``pytorch.*`` passes and bf16 AMP (see :mod:`.graph_optimization.optimize`)."""
        return graph_opt.optimize_batch(self, model, precisions, passes, example_batch, tune)

    def save_optimized(self, model: Any, path: Path) -> None:
        """TorchScript archive or state_dict (see :mod:`.graph_optimization.optimize`)."""
        graph_opt.save_model(model, path)

    def deploy(self, model: Any, config: QuantConfig, candidate: Any,
               calib_data: Iterable[DataBatch], inputs: Any,
               accepts: Callable[[Any], bool]) -> tuple[Any, dict[str, Any]]:
        """PT2E candidates are compiled (and checked against the goal again: compiled int8
        rounds differently from the emulated graph the trials scored); under ``auto`` the
        config is also built by PT2E and the faster backend is kept (:mod:`.deployment`)."""
        backend = getattr(candidate, BACKEND_ATTR, "eager")
        alternatives = {}
        if self.backend == "auto" and backend != "pt2e" and inputs is not None:
            alternatives["pt2e"] = lambda: self._build_checked(
                "pt2e", model, config, self._calib_batches(config, calib_data))
        params = sum(p.numel() for p in model.parameters())
        return deployment.deploy(candidate, backend, alternatives, inputs, accepts,
                                 params < self.pt2e_min_params and
                                 f"{params} parameters < pt2e_min_params {self.pt2e_min_params}")


def _fx_module(name: str) -> Any:
    """``tunekit.adaptors.pytorch.<name>``, a module built on torch.ao's FX graph mode, imported
    on first use: FX mode is deprecated, may be missing, and PT2E and eager must not need it."""
    return importlib.import_module(f"tunekit.adaptors.pytorch.{name}")
