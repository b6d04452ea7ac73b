"""int8 through torch.ao.quantization FX graph mode (x86 backend): the default backend.

Why FX: its converted models run real int8 kernels (oneDNN/FBGEMM) eagerly, with no compile step,
and one trial (prepare + calibrate + convert) costs well under a second on small models, so a
tuning of dozens of trials stays cheap. See docs/pytorch-backend.md for the figures.

Per-op control: the ``QConfigMapping`` has a global qconfig of ``None`` and one
``set_module_name(op.name, qconfig)`` per tunable op (``None`` for bf16/fp32). ``set_object_type``
is avoided: it must agree across every module of a fused pattern, so Conv+BN+ReLU would raise
``LookupError``. Fusion names the fused module after its first module (the conv), so a
by-name qconfig follows the conv into its fused BN/ReLU, and a fallen-back op stays one float
module (e.g. ``ConvReLU2d``) under the conv's name, which :mod:`.bf16` can then wrap.

Tracing and fusion happen once per FP32 model (:class:`FusedGraphCache`); each trial copies the
fused graph, which also serves as the FP32 reference for :mod:`.inspection` (its outputs line up
with the fused int8 modules).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.ao.quantization import FakeQuantizeBase, ObserverBase, QConfigMapping
from torch.ao.quantization.quantize_fx import convert_fx, fuse_fx, prepare_fx
from torch.fx import GraphModule, Node

from tunekit.adaptors.pytorch.bf16 import wrap_bf16
from tunekit.adaptors.pytorch.calibration import TWINS, ObserverStore
from tunekit.adaptors.pytorch.followers import add_followers, methods_as_functions
from tunekit.adaptors.pytorch.prepack import PackedWeights
from tunekit.adaptors.pytorch.qconfig import qconfigs_by_name, to_qconfig
from tunekit.adaptors.pytorch.runtime import calibrate
from tunekit.adaptors.pytorch.sink_dequantize import sink_dequantize
from tunekit.space import QuantConfig

_log = logging.getLogger(__name__)


def _fingerprint(model: nn.Module) -> tuple[Any, ...]:
    """Changes when a parameter or buffer is replaced or modified in place (its version bumps)."""
    return tuple((name, id(t), t._version) for name, t in
                 [*model.named_parameters(), *model.named_buffers()])


class FusedGraphCache:
    """The traced and fused ``GraphModule`` (eval mode) of one FP32 model, built once; the
    adaptor keeps one in each model's state (:meth:`~tunekit.adaptor.Adaptor.model_state`).

    Checked against a fingerprint of the model's tensors, so a model edited in place
    (``load_state_dict``, further training) is traced again rather than served stale. A model
    that cannot be traced caches its exception, so the fallback decision is also taken once.
    """

    def __init__(self) -> None:
        self._entry: tuple[Any, Any] | None = None

    def get(self, model: nn.Module) -> GraphModule:
        """The fused graph of ``model``; re-raises the tracing error of an untraceable model."""
        fingerprint = _fingerprint(model)
        if self._entry is None or self._entry[0] != fingerprint:
            try:
                result: Any = fuse_fx(unshare_stateless(copy.deepcopy(model).eval()))
                methods_as_functions(result)
            except Exception as exc:  # torch.fx raises many types; all mean "not traceable"
                result = exc.with_traceback(None)  # keep no frames (and model copies) alive
            self._entry = (fingerprint, result)
        if isinstance(self._entry[1], Exception):
            raise self._entry[1]
        return self._entry[1]


def unshare_stateless(model: nn.Module) -> nn.Module:
    """``model`` traced, with each extra call of a parameter-free module (one ``nn.ReLU`` called
    after ``bn1`` and again after the residual add, as torchvision's ResNet does) given its own
    copy.

    Fusion folds the first call's module into the conv before it; the second call then points
    into the fused module and conversion fails (``KeyError: 'layer1.0.conv1.1'``). A copy per call
    costs nothing (no state) and keeps every call fusable on its own. Returns ``model`` unchanged
    when it shares nothing (or cannot be traced: fusion then reports that itself).
    """
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception:  # torch.fx raises many types; fuse_fx's own trace reports it
        return model
    seen: dict[str, int] = {}
    for node in traced.graph.nodes:
        if node.op != "call_module":
            continue
        uses = seen[node.target] = seen.get(node.target, 0) + 1
        module = traced.get_submodule(node.target)
        if uses == 1 or any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
            continue
        name = f"{node.target}_call{uses}"
        traced.add_submodule(name, copy.deepcopy(module))
        node.target = name
    if all(uses == 1 for uses in seen.values()):
        return model
    traced.recompile()
    return traced


def qconfig_mapping(config: QuantConfig) -> QConfigMapping:
    """Global ``None``; each op by its module name (``None`` for bf16/fp32 ops)."""
    mapping = QConfigMapping()
    for op, op_config in config.ops.items():
        mapping.set_module_name(op.name, to_qconfig(op_config))
    return mapping


def build(fused: GraphModule, config: QuantConfig, calib_batches: Iterable[Any], *,
          followers: bool = True, store: ObserverStore | None = None,
          packed: PackedWeights | None = None) -> GraphModule:
    """A candidate: prepare a copy of ``fused``, calibrate, convert (dequantizes sunk past
    int8-exact ops, see :mod:`.sink_dequantize`), then wrap the bf16 ops.

    ``followers`` also runs in int8 the glue between int8 ops (see :mod:`.followers`). With a ``store`` (see :mod:`.calibration`) the observers come calibrated
    from it and the batches are not run. With ``packed`` (see :mod:`.prepack`), weights packed
    for an earlier candidate are reused. With no calibration batches the observers keep their
    defaults; loading a saved candidate relies on that to rebuild the structure before restoring
    its parameters.
    """
    try:
        prepared = prepare(fused, config, followers=followers)
        if store is None or not store.restore(prepared):
            calibrate(prepared, calib_batches)
            if store is not None:
                store.remember(prepared)
        reshare_observers(prepared)
        with packed.reused() if packed is not None else contextlib.nullcontext():
            candidate = convert_fx(prepared)
        sink_dequantize(candidate)
    finally:
        release_torch_cache()
    wrap_bf16(candidate, [op.name for op in config.ops_in("bf16")])
    return candidate


def release_torch_cache() -> None:
    """Let go of the models torch.ao keeps alive.

    torch.ao's ``assert_and_get_unique_device`` is wrapped in an unbounded ``functools.cache``
    keyed on the module it inspects, so every prepared and converted model of every trial stays
    in memory: +2 MiB per trial on the digits CNN, +208 MiB over trials 101-200
    (benchmarks/memory_soak.py). The cache only saves a walk over the parameters.
    """
    from torch.ao.quantization.fx import utils

    clear = getattr(utils.assert_and_get_unique_device, "cache_clear", None)
    if clear is not None:
        clear()


def prepare(fused: GraphModule, config: QuantConfig, *, followers: bool = True) -> GraphModule:
    """A copy of ``fused`` with the observers ``config`` needs, before calibration."""
    mapping = qconfig_mapping(config)
    static = qconfigs_by_name(config, "static")
    if followers:
        add_followers(mapping, fused, static)
    prepared = prepare_fx(copy.deepcopy(fused), mapping, example_inputs=())
    unshare_observers(prepared)
    split_mixed_users(prepared)
    keep_float_concats(prepared)
    observe_static_inputs(prepared, static)
    return prepared


def _is_observer(node: Node, modules: dict[str, nn.Module]) -> bool:
    """An observer, or a fake quantizer (its QAT counterpart, see :mod:`.qat`)."""
    return node.op == "call_module" and isinstance(modules.get(str(node.target)),
                                                   (ObserverBase, FakeQuantizeBase))


#: ``GraphModule.meta`` key: the observer attribute names FX made share one observer, per group
SHARED = "tunekit_shared_observers"


def unshare_observers(prepared: GraphModule) -> int:
    """Give each observed tensor its own observer where FX shares one (the input and output of a
    pooling or shape op; every input and the output of a concat), until :func:`reshare_observers`.

    The calibrate-once store (:mod:`.calibration`) keeps statistics per tensor and could not
    rebuild a histogram of several tensors observed together; with one observer per tensor a
    trial calibrated on its own and one restored from the store hold the same statistics.
    Returns the observers made.
    """
    groups: dict[int, list[str]] = {}
    for node in prepared.graph.nodes:
        if node.op == "call_module" and isinstance(
                prepared.get_submodule(str(node.target)), ObserverBase):
            groups.setdefault(id(prepared.get_submodule(str(node.target))), []).append(
                str(node.target))
    shared = [targets for targets in groups.values() if len(targets) > 1]
    for targets in shared:
        for target in targets[1:]:
            prepared.add_submodule(target, copy.deepcopy(prepared.get_submodule(target)))
    prepared.meta[SHARED] = shared
    return sum(len(targets) - 1 for targets in shared)


def reshare_observers(prepared: GraphModule) -> None:
    """Before convert, make each group of :func:`unshare_observers` one observer again, so the
    tensors get one scale as FX meant: a concat's inputs share the scale of the concat's output
    (which covers them all), a pooling or shape op keeps its input's scale."""
    nodes = {str(n.target): n for n in prepared.graph.nodes if n.op == "call_module"}
    for targets in prepared.meta.pop(SHARED, []):
        chosen = next((t for t in targets if _observes_concat(nodes[t])), targets[0])
        for target in targets:
            prepared.add_submodule(target, prepared.get_submodule(chosen))


def _observes_concat(observer: Node) -> bool:
    watched = observer.args[0] if observer.args else None
    return isinstance(watched, Node) and watched.op == "call_function" \
        and watched.target in (torch.cat, torch.stack)


def split_mixed_users(prepared: GraphModule) -> int:
    """Work around an FX lowering bug that breaks graphs with float ops between int8 ops.

    A float op that can run on quantized tensors (max-pool, flatten, ReLU, ...) fed by an int8 op
    and read by both an int8 op and a float op (a ResNet stem's max-pool: it feeds the next conv
    and the residual add) is rewritten by ``convert_fx`` to take the quantized tensor, but its
    float reader is not given a ``dequantize`` (its own source says "TODO: add safety checks that
    users for the ref_node and dq_node needs to be one"), so the model fails with "promoteTypes
    with quantized numbers". Giving the observed reader a twin of the op keeps each path
    single-typed; the twin costs one extra call of a cheap op. Returns the number of twins made.
    """
    graph = prepared.graph
    modules = dict(prepared.named_modules(remove_duplicate=False))
    attrs = prepared.meta.get("_observed_graph_module_attrs")
    twins = 0
    for node in list(graph.nodes):
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        if _is_observer(node, modules) or not any(
                _is_observer(arg, modules) for arg in node.all_input_nodes):
            continue
        observed = [user for user in node.users if _is_observer(user, modules)]
        if not observed or len(observed) == len(node.users):
            continue
        with graph.inserting_after(node):
            twin = graph.node_copy(node)
        for user in observed:
            user.replace_input_with(node, twin)
        _copy_node_attrs(attrs, node.name, twin.name)
        prepared.meta.setdefault(TWINS, {})[twin.name] = node.name
        twins += 1
    if twins:
        graph.lint()
        prepared.recompile()
        _log.debug("split %d float op(s) read by both int8 and float ops", twins)
    return twins


def keep_float_concats(prepared: GraphModule) -> int:
    """Work around FX lowering a float ``torch.cat``/``torch.stack`` between int8 ops to int8.

    Fed by int8 ops and read by one, a concat is rewritten by ``convert_fx`` to concatenate the
    quantized tensors as they are, though each carries its own scale ("All inputs of this cat
    operator must share the same quantization parameters. Otherwise large numerical
    inaccuracies may occur"), and the reader's calibrated input scale is dropped. Lowering only
    happens when every input comes straight from a ``dequantize``, so routing the first observed
    input through ``.float()`` (a no-op on a float tensor) keeps the concat float, between a
    dequantize and the reader's own quantize. Returns the concats kept float.
    """
    graph = prepared.graph
    modules = dict(prepared.named_modules(remove_duplicate=False))
    attrs = prepared.meta.get("_observed_graph_module_attrs")
    qconfigs = getattr(attrs, "node_name_to_qconfig", None) or {}
    kept = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (torch.cat, torch.stack) \
                or qconfigs.get(node.name) is not None:  # an int8 concat (see .followers)
            continue
        observed = [n for n in node.all_input_nodes if _is_observer(n, modules)]
        if not observed:
            continue
        with graph.inserting_before(node):
            plain = graph.call_method("float", (observed[0],))
        node.replace_input_with(observed[0], plain)
        kept += 1
    if kept:
        graph.lint()
        prepared.recompile()
    return kept


def observe_static_inputs(prepared: GraphModule, static: Mapping[str, Any]) -> int:
    """Work around FX leaving a static int8 op fed by a dynamic int8 op unobserved.

    FX takes the dynamic op's output for an int8 one and inserts no observer in front of the
    static op, which then stays a slow "reference" module with float activations. An observer of
    the static op's own activation qconfig in that spot makes convert_fx quantize the tensor as
    the static op expects (it lowers the pair into int8 kernels). Returns the observers added.
    """
    graph = prepared.graph
    modules = dict(prepared.named_modules(remove_duplicate=False))
    added = 0
    for node in list(graph.nodes):
        if node.op != "call_module" or node.target not in static or not node.args:
            continue
        source = node.args[0]
        if not isinstance(source, Node) or _is_observer(source, modules):
            continue
        name = f"tunekit_input_observer_{added}"
        prepared.add_submodule(name, static[str(node.target)].activation())
        with graph.inserting_before(node):
            observer = graph.call_module(name, (source,))
        node.replace_input_with(source, observer)
        added += 1
    if added:
        graph.lint()
        prepared.recompile()
    return added


def _copy_node_attrs(attrs: Any, source: str, target: str) -> None:
    """Give the twin the scope/qconfig entries convert_fx looks up by node name."""
    for table in ("node_name_to_scope", "node_name_to_qconfig"):
        entries = getattr(attrs, table, None)
        if isinstance(entries, dict) and source in entries:
            entries[target] = entries[source]


__all__ = ["FusedGraphCache", "build", "keep_float_concats", "observe_static_inputs", "prepare",
           "qconfig_mapping", "reshare_observers", "split_mixed_users", "unshare_observers"]
