"""int8 through ``torch.export`` and torchao's PT2E flow, deployed compiled by Inductor.

Why a third backend: ``torch.ao.quantization``'s FX mode (the ``fx`` backend) is deprecated, and
on transformer encoders PT2E compiled by Inductor with frozen weights is much faster than FX int8
(it fuses the quantize/dequantize pairs, GELU, softmax and LayerNorm into generated loops):
3.4× over FP32 against FX's 2.0× on the BERT-like encoder here, see docs/pytorch-backend.md.

How a config becomes a candidate: the FP32 model is exported once per model
(:class:`ExportCache`, batch dimension dynamic), each trial copies the exported graph, annotates
it with an ``X86InductorQuantizer`` built from the config (:func:`quantizer`), runs
``prepare_pt2e``, takes calibrated observers from an :class:`ObserverCache` (or calibrates and
fills it), and ``convert_pt2e``. The converted graph computes int8 numerics with float
quantize/dequantize ops; it is slow until compiled, so :class:`PT2EModel` compiles it with
Inductor (``freezing``) only once it is *deployed*: when it is timed (the latency objective) or
handed to the user. An Inductor compile costs 10-60 s here, so trials the objective does not time
never pay it, and torch's FX graph cache makes a repeated graph cheap.

Per-op precision: the global config is the config's most common int8 option, so the glue between
int8 ops (residual adds, pooling, concatenation) is annotated exactly as torchao's own default
recipe does; ops with another int8 option get it by module name, and fp32 ops get ``None`` by
module name. bf16 per op and static/dynamic mixes in one model are refused (one
``NotSupportedError`` naming the reason: the ``auto`` backend then uses FX or eager).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import logging
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from tunekit.adaptors.pytorch.calibration import signature
from tunekit.adaptors.pytorch.runtime import calibrate, model_fingerprint
from tunekit.data import split_batch
from tunekit.errors import NotSupportedError
from tunekit.space import OpConfig, QuantConfig, TuningSpace

_log = logging.getLogger(__name__)
#: torchao's activation observers' eps, as in its default x86 config
EPS = 2**-12


def missing() -> str | None:
    """Why the backend cannot run here (torchao not importable), or None."""
    try:
        _torchao()
    except ImportError as exc:
        return (f"torchao is not installed ({exc}); install it with pip install 'tunekit[pt2e]' "
                "(CPU wheels)")
    return None


def _torchao() -> Any:
    """torchao's PT2E module, imported quietly (its import logs one line per optional CUDA
    kernel library it cannot load, irrelevant on CPU)."""
    logger = logging.getLogger("torchao")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import torchao.quantization.pt2e.quantize_pt2e as pt2e
    finally:
        logger.setLevel(level)
    return pt2e


# --------------------------------------------------------------------------- export
def export_spec(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any], Any]:
    """``(args, kwargs, dynamic_shapes)`` for exporting a model called with ``inputs`` (the
    calling convention of :func:`~.runtime.call_model`), every tensor's dim 0 dynamic."""
    def dims(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return {0: torch.export.Dim.AUTO} if value.dim() else None
        if isinstance(value, (list, tuple)):
            return type(value)(dims(v) for v in value)
        if isinstance(value, dict):
            return {k: dims(v) for k, v in value.items()}
        return None

    def doubled(value: Any) -> Any:  # a batch of 1 would make the exported batch size static
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == 1:
            return torch.cat([value, value])
        if isinstance(value, (list, tuple)):
            return type(value)(doubled(v) for v in value)
        if isinstance(value, dict):
            return {k: doubled(v) for k, v in value.items()}
        return value

    inputs = doubled(inputs)
    if isinstance(inputs, dict):
        return (), dict(inputs), dims(dict(inputs))
    args = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
    return args, {}, dims(args)


def export(model: nn.Module, inputs: Any) -> torch.fx.GraphModule:
    """``torch.export`` of ``model`` (a copy in eval mode) for inputs like ``inputs``."""
    args, kwargs, shapes = export_spec(inputs)
    with torch.no_grad():
        program = torch.export.export(copy.deepcopy(model).eval(), args, kwargs or None,
                                      dynamic_shapes=shapes)
    return program.module()


class ExportCache:
    """The exported graph of one FP32 model (or the exception export raised), built once and
    rebuilt when a parameter changes (as :class:`~.fx_backend.FusedGraphCache`)."""

    def __init__(self) -> None:
        self._entry: tuple[Any, Any] | None = None

    def get(self, model: nn.Module, inputs: Any) -> torch.fx.GraphModule:
        """The exported graph of ``model``; re-raises the export error of one that fails."""
        key = model_fingerprint(model)
        if self._entry is None or self._entry[0] != key:
            try:
                result: Any = export(model, inputs)
            except Exception as exc:  # torch.export raises many types; all mean "cannot export"
                result = exc.with_traceback(None)
            self._entry = (key, result)
        if isinstance(self._entry[1], Exception):
            raise self._entry[1]
        return self._entry[1]


# --------------------------------------------------------------------------- configs
def _spec(**kwargs: Any) -> Any:
    from torchao.quantization.pt2e.quantizer import QuantizationSpec

    return QuantizationSpec(**kwargs)


def quantization_config(option: OpConfig) -> Any:
    """torchao's ``QuantizationConfig`` for one int8 option (tunekit's items mapped as in
    :mod:`.qconfig`: uint8 activations, int8 symmetric weights, no reduced range)."""
    from torchao.quantization.pt2e import observer as obs
    from torchao.quantization.pt2e.quantizer import QuantizationConfig

    dynamic = option.approach == "dynamic"
    if dynamic:
        act_observer, qscheme = obs.PlaceholderObserver, torch.per_tensor_affine
    else:
        algorithms = {"minmax": obs.MinMaxObserver, "histogram": obs.HistogramObserver}
        act_observer = algorithms.get(option.algorithm or "minmax")
        if act_observer is None:
            raise NotSupportedError(f"the pt2e backend has no {option.algorithm} calibration "
                                    "(minmax or histogram)")
        qscheme = torch.per_tensor_symmetric if option.scheme == "sym" else torch.per_tensor_affine
    act = _spec(dtype=torch.uint8, quant_min=0, quant_max=255, qscheme=qscheme,
                is_dynamic=dynamic, observer_or_fake_quant_ctr=act_observer.with_args(eps=EPS))
    if option.granularity == "per_tensor":
        weight_observer, weight_scheme = obs.MinMaxObserver, torch.per_tensor_symmetric
    else:
        weight_observer, weight_scheme = obs.PerChannelMinMaxObserver, torch.per_channel_symmetric
    weight = _spec(dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=weight_scheme,
                   ch_axis=0, is_dynamic=False,
                   observer_or_fake_quant_ctr=weight_observer.with_args(eps=EPS))
    return QuantizationConfig(act, act, weight, None, False)


def quantizer(config: QuantConfig) -> Any:
    """An ``X86InductorQuantizer`` doing what ``config`` says (see the module docstring)."""
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

    bf16 = [op.name for op in config.ops_in("bf16")]
    if bf16:
        raise NotSupportedError(f"the pt2e backend has no bf16 per op ({', '.join(bf16[:3])})")
    int8 = {op.name: c for op, c in config.ops.items() if c.precision == "int8"}
    if len({c.approach == "dynamic" for c in int8.values()}) > 1:
        raise NotSupportedError("the pt2e backend cannot mix static and dynamic int8 ops in one "
                                "model (X86InductorQuantizer runs one mode per model)")
    result = X86InductorQuantizer()
    if not int8:
        return result
    common = collections.Counter(int8.values()).most_common(1)[0][0]
    result.set_global(quantization_config(common))
    for op, option in config.ops.items():
        if option.precision != "int8":
            result.set_module_name_qconfig(op.name, None)
        elif option != common:
            result.set_module_name_qconfig(op.name, quantization_config(option))
    return result


def restrict(space: TuningSpace) -> TuningSpace:
    """``space`` without the options this backend cannot build (bf16, percentile calibration),
    so an explicit ``backend: pt2e`` tuning spends no trial on them."""
    def buildable(option: OpConfig) -> bool:
        return option.precision != "bf16" and option.algorithm != "percentile"

    return TuningSpace({op: tuple(o for o in options if buildable(o))
                        for op, options in space.options.items()})


# --------------------------------------------------------------------------- calibration
def _observers(prepared: torch.fx.GraphModule) -> dict[tuple[str, tuple[Any, ...]], list[str]]:
    """Each observer of ``prepared`` by its key, with the attribute names it sits under.

    The key is what the observer watches (every call site's input: one observer object can be
    shared, registered under several names, e.g. by a max-pool's input and output) and its kind.
    Observers are looked up per call site, as ``named_modules()`` lists a shared one once.
    """
    from torchao.quantization.pt2e.observer import ObserverBase

    groups: dict[int, tuple[nn.Module, list[str], set[str]]] = {}
    for node in prepared.graph.nodes:
        if node.op != "call_module":
            continue
        target = str(node.target)
        module = prepared.get_submodule(target)
        if not isinstance(module, ObserverBase):
            continue
        _, targets, watched = groups.setdefault(id(module), (module, [], set()))
        if target not in targets:
            targets.append(target)
        watched.add(getattr(node.args[0], "name", str(node.args[0])))
    return {(",".join(sorted(watched)), signature(module)): targets
            for module, targets, watched in groups.values()}


class ObserverCache:
    """Calibrated observers by (observed tensor, observer kind), filled by calibrated trials.

    While calibrating, a prepared PT2E graph computes in FP32 (observers only watch), so the
    statistics of a tensor do not depend on the trial's config: a later trial whose observers are
    all here converts without running the calibration data (the same reasoning as the FX path's
    :class:`~.calibration.ObserverStore`). Node names are those of the one exported graph every
    trial copies, so they line up across trials.
    """

    def __init__(self) -> None:
        self._observers: dict[tuple[str, tuple[Any, ...]], nn.Module] = {}

    def __len__(self) -> int:
        return len(self._observers)

    def restore(self, prepared: torch.fx.GraphModule) -> bool:
        """Calibrated copies in place of ``prepared``'s observers; False if any is missing."""
        found = _observers(prepared)
        if any(key not in self._observers for key in found):
            return False
        for key, targets in found.items():
            observer = copy.deepcopy(self._observers[key])
            for target in targets:  # a shared observer stays shared
                setattr(prepared, target, observer)
        return True

    def remember(self, prepared: torch.fx.GraphModule) -> None:
        for key, targets in _observers(prepared).items():
            self._observers.setdefault(key, copy.deepcopy(prepared.get_submodule(targets[0])))


# --------------------------------------------------------------------------- candidates
class PT2EModel(nn.Module):
    """A PT2E int8 program: the converted graph, run as is until :meth:`deploy`, then compiled
    by Inductor with frozen weights on its first call (``compile_s`` records that call).

    Compiled for fixed shapes (``dynamic=False``): a dynamic-shape compile of the int8 graph is
    slower, and a new batch size compiles again (torch's cache serves a repeated graph).
    """

    def __init__(self, graph: torch.fx.GraphModule, example: Any = None) -> None:
        super().__init__()
        self.graph = graph
        self.example = example
        self.deployed = False
        self.compile_s: float | None = None
        #: the ``torch.export`` program a loaded candidate came from (saved again as it is)
        self.program: Any = None
        self.__dict__["_compiled"] = None  # not a submodule: its state is the graph's

    def train(self, mode: bool = True) -> PT2EModel:
        """Only the flag: an exported graph refuses ``train()``/``eval()`` and always runs in
        the mode it was exported in (eval)."""
        self.training = mode
        return self

    def deploy(self) -> PT2EModel:
        self.deployed = True
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.deployed:
            return self.graph(*args, **kwargs)
        compiled = self.__dict__["_compiled"]
        first = compiled is None
        if first:
            compiled = self.__dict__["_compiled"] = torch.compile(self.graph, dynamic=False)
        start = time.perf_counter()
        with torch._inductor.config.patch(freezing=True), warnings.catch_warnings():
            if first:  # Inductor's own int8 lowering warns about how it copies a tensor
                warnings.filterwarnings("ignore", message="To copy construct from a tensor")
            outputs = compiled(*args, **kwargs)
        if first:
            self.compile_s = time.perf_counter() - start
            _log.info("Inductor compiled the pt2e model in %.1f s", self.compile_s)
        return outputs


def build(graph: torch.fx.GraphModule, config: QuantConfig, calib_batches: Iterable[Any],
          cache: ObserverCache | None = None, example: Any = None) -> PT2EModel:
    """A candidate from a copy of the exported ``graph``: annotate, prepare, calibrate (or take
    the cache's observers), convert."""
    pt2e = _torchao()
    with quiet_export():
        prepared = pt2e.prepare_pt2e(copy.deepcopy(graph), quantizer(config))
        if cache is None or not cache.restore(prepared):
            calibrate(prepared, calib_batches)
            if cache is not None:
                cache.remember(prepared)
        converted = pt2e.convert_pt2e(prepared)
    return PT2EModel(converted, example)


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Hide torch.export's and torchao's per-call notices (pytree registrations, deprecations)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger = logging.getLogger("torch.utils._pytree")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)


class Builder:
    """The PT2E candidates of one FP32 model: its export and observer cache (the adaptor keeps
    one in each model's state, :meth:`~tunekit.adaptor.Adaptor.model_state`)."""

    def __init__(self) -> None:
        self._exports = ExportCache()
        self._cache: tuple[Any, ObserverCache] | None = None

    def problem(self, model: nn.Module, probe: Any) -> str | None:
        """Why this backend cannot serve ``model`` (torchao missing, export failing), or None."""
        reason = missing()
        if reason is None and probe:
            try:
                self._exports.get(model, split_batch(probe[0])[0])
            except Exception as exc:  # noqa: BLE001 - every export failure is a reason
                reason = f"torch.export cannot export {type(model).__name__} " \
                         f"({type(exc).__name__}: {exc})"
        return reason

    def build(self, model: nn.Module, config: QuantConfig, batches: Any) -> PT2EModel:
        reason = missing()
        if reason:
            raise NotSupportedError(reason)
        if not batches:
            raise NotSupportedError("the pt2e backend exports the model on one batch of inputs: "
                                    "give calibration data")
        example = split_batch(batches[0])[0]
        graph = self._exports.get(model, example)
        if self._cache is None or self._cache[0] is not graph:
            self._cache = (graph, ObserverCache())
        return build(graph, config, batches, self._cache[1], example)
