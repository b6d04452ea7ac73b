"""Calibrate once: activation statistics for every op and every calibration option, in one pass.

During calibration a prepared model computes in FP32 (observers only watch), so what an observer
sees at a given tensor does not depend on the trial's config. One pass over the fused FP32 graph
with an observer of every kind the tuning space can ask for after every float tensor therefore
holds every trial's statistics. A trial then copies the calibrated observers into its prepared
graph by (observed tensor, observer kind) and converts, without running the calibration data
again. Observer state depends only on the batches and their order, so the result is identical to
calibrating each trial (tests check outputs bit for bit).

Persisted for resume: :meth:`ObserverStore.save` writes the observers' ``state_dict`` tensors
(with their keys as plain strings and numbers) with ``torch.save``; :meth:`ObserverStore.load`
reads them back with ``weights_only=True`` into fresh observers made by the space's own
factories, so no object is ever unpickled. The file is named after :func:`fingerprint`, a hash of
everything the statistics depend on (the fused graph, the model's tensors, the calibration
batches, the observer kinds and the watched tensors, the torch version): a changed model, data
or space reads as a different file and is calibrated again.

The pass watches the tensors that the all-int8 config observes (the inputs and outputs of every
quantizable op and int8 follower: a fallback only removes observers); watching every node with
every kind costs many times more for nothing. An observer the pass did not make (a tensor or a
kind it did not watch) is a miss: that trial calibrates normally, and its observers join the
store, so the next trial asking for them hits.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.ao.quantization import ObserverBase
from torch.ao.quantization.observer import FixedQParamsObserver
from torch.fx import GraphModule, Node

from tunekit.adaptors.pytorch.qconfig import activation_observer, is_static
from tunekit.adaptors.pytorch.runtime import calibrate
from tunekit.space import TuningSpace

#: ``GraphModule.meta`` key under which :func:`~.fx_backend.split_mixed_users` records
#: ``twin node name → original node name`` (a twin computes the same tensor as its original).
TWINS = "tunekit_twins"

Key = tuple[str, tuple[Any, ...]]
_log = logging.getLogger(__name__)
#: format of the files written by :meth:`ObserverStore.save`
FILE_VERSION = 1


def signature(observer: nn.Module) -> tuple[Any, ...]:
    """What makes two observers interchangeable: their class and every setting that shapes the
    statistics or the qparams computed from them."""
    return (type(observer).__qualname__, str(getattr(observer, "dtype", None)),
            str(getattr(observer, "qscheme", None)), getattr(observer, "quant_min", None),
            getattr(observer, "quant_max", None), getattr(observer, "reduce_range", None),
            getattr(observer, "bins", None), getattr(observer, "percentile", None),
            str(getattr(observer, "eps", None)))


class _Watch(nn.Module):
    """Feeds a float tensor to several observers and returns it unchanged."""

    def __init__(self, observers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.observers = nn.ModuleList(observers)

    def forward(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            for observer in self.observers:
                observer(x)
        return x


def _observer_kinds(space: TuningSpace) -> list[Any]:
    """One observer factory per distinct activation observer the space's static int8 options use."""
    kinds: dict[tuple[Any, ...], Any] = {}
    for options in space.options.values():
        for option in options:
            if is_static(option):
                factory = activation_observer(option)
                kinds.setdefault(signature(factory()), factory)
    return list(kinds.values())


def _tensor_nodes(graph_module: GraphModule) -> list[Node]:
    return [n for n in graph_module.graph.nodes
            if n.op in ("placeholder", "call_module", "call_function", "call_method")]


class ObserverStore:
    """Calibrated observers by (observed node name, observer signature)."""

    def __init__(self) -> None:
        self._observers: dict[Key, nn.Module] = {}

    def __len__(self) -> int:
        return len(self._observers)

    @classmethod
    def collect(cls, fused: GraphModule, space: TuningSpace, batches: Iterable[Any],
                watch: Collection[str] | None = None) -> ObserverStore:
        """One calibration pass over a copy of ``fused`` watching the float tensors named in
        ``watch`` (every tensor if ``None``) with every observer kind of ``space``."""
        store = cls()
        kinds = _observer_kinds(space)
        if not kinds:
            return store
        watched = copy.deepcopy(fused)
        graph = watched.graph
        watchers: dict[str, _Watch] = {}
        nodes = [n for n in _tensor_nodes(watched) if watch is None or n.name in watch]
        for i, node in enumerate(nodes):
            watcher = _Watch([factory() for factory in kinds])
            watched.add_submodule(f"_tunekit_watch_{i}", watcher)
            with graph.inserting_after(node):
                watch = graph.call_module(f"_tunekit_watch_{i}", (node,))
            node.replace_all_uses_with(watch, delete_user_cb=lambda user, w=watch: user is not w)
            watchers[node.name] = watcher
        graph.lint()
        watched.recompile()
        calibrate(watched, batches)
        for name, watcher in watchers.items():
            for observer in watcher.observers:
                store._observers[(name, signature(observer))] = _settled(observer)
        return store

    def restore(self, prepared: GraphModule) -> bool:
        """Put calibrated copies in place of ``prepared``'s observers; False if any is missing
        (the caller then calibrates ``prepared`` and calls :meth:`remember`)."""
        found = []
        for node, observer in _observers(prepared):
            cached = self._observers.get(self._key(prepared, node, observer))
            if cached is None:
                return False
            found.append((str(node.target), cached))
        for target, cached in found:
            prepared.add_submodule(target, copy.deepcopy(cached))
        return True

    def remember(self, prepared: GraphModule) -> None:
        """Keep the observers of a ``prepared`` model that was just calibrated."""
        for node, observer in _observers(prepared):
            key = self._key(prepared, node, observer)
            if key not in self._observers:
                self._observers[key] = _settled(copy.deepcopy(observer))

    def save(self, path: Path, space: TuningSpace) -> int:
        """Write the observers the space's factories can remake (tensors and plain keys only)
        to ``path`` atomically; returns how many were written."""
        factories = {signature(factory()): factory for factory in _observer_kinds(space)}
        entries, checked = [], {}
        for (name, sig), observer in self._observers.items():
            if sig not in factories:
                continue
            state = _state(observer)
            if sig not in checked:  # does this kind's state_dict hold all its statistics?
                checked[sig] = _round_trips(observer, state, factories[sig])
            if checked[sig]:
                entries.append({"node": name, "signature": list(sig), "state": state})
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + f".{os.getpid()}.tmp")
        torch.save({"version": FILE_VERSION, "entries": entries}, partial)
        os.replace(partial, path)
        return len(entries)

    @classmethod
    def load(cls, path: Path, space: TuningSpace) -> ObserverStore:
        """The store :meth:`save` wrote, rebuilt with ``weights_only`` loading into observers
        made by ``space``'s factories; raises ValueError on a file it cannot use."""
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("version") != FILE_VERSION:
            raise ValueError(f"{path} is not a calibration store of version {FILE_VERSION}")
        factories = {signature(factory()): factory for factory in _observer_kinds(space)}
        store = cls()
        for entry in payload["entries"]:
            sig = tuple(entry["signature"])
            factory = factories.get(sig)
            if factory is None:
                raise ValueError(f"{path} holds an observer kind the space does not use: {sig}")
            observer = factory()
            observer.load_state_dict(entry["state"])
            store._observers[(str(entry["node"]), sig)] = observer
        return store

    @classmethod
    def observed(cls, prepared: GraphModule) -> set[str]:
        """The tensors (node names of the FP32 graph) that ``prepared``'s observers watch."""
        return {cls._key(prepared, node, observer)[0] for node, observer in _observers(prepared)}

    @staticmethod
    def _key(prepared: GraphModule, node: Node, observer: nn.Module) -> Key:
        watched = node.args[0]
        name = watched.name if isinstance(watched, Node) else str(watched)
        twins = prepared.meta.get(TWINS, {})
        return twins.get(name, name), signature(observer)


def kept(path: Path | None, space: TuningSpace,
         collect: Callable[[], ObserverStore]) -> ObserverStore:
    """The statistics an earlier run kept in ``path`` (a resumed tuning), else ``collect()``'s,
    then kept there; a damaged or foreign file is calibrated again, an unwritable folder only
    warned about (``path`` None: keep nothing)."""
    if path is not None and path.exists():
        try:
            store = ObserverStore.load(path, space)
        except Exception as exc:  # a damaged or foreign file: calibrate again
            _log.warning("ignoring the calibration statistics in %s: %s", path, exc)
        else:
            _log.info("calibration statistics reused from %s", path)
            return store
    store = collect()
    if path is not None:
        try:
            store.save(path, space)
        except OSError as exc:
            _log.warning("cannot keep the calibration statistics in %s: %s", path, exc)
    return store


def _observers(prepared: GraphModule) -> list[tuple[Node, nn.Module]]:
    """The observers that hold statistics; fixed-qparams ones (sigmoid-like glue) have none."""
    modules = dict(prepared.named_modules())
    return [(n, modules[str(n.target)]) for n in prepared.graph.nodes
            if n.op == "call_module" and isinstance(modules.get(str(n.target)), ObserverBase)
            and not isinstance(modules[str(n.target)], FixedQParamsObserver)]


def _settled(observer: nn.Module) -> nn.Module:
    """``observer`` with its statistics final (see ``PercentileObserver.settle``): the store's
    observers are only ever copied into prepared graphs and converted, never fed again."""
    settle = getattr(observer, "settle", None)
    if settle is not None:
        settle()
    return observer


def _state(observer: nn.Module) -> dict[str, Any]:
    """The observer's ``state_dict``; an observer that keeps samples outside its buffers until
    ``calculate_qparams`` (the percentile observer) has them folded in on a copy first."""
    if getattr(observer, "_samples", None):
        observer = copy.deepcopy(observer)
        observer.calculate_qparams()
    return observer.state_dict()


def _round_trips(observer: nn.Module, state: dict[str, Any], factory: Any) -> bool:
    """Whether a fresh observer loaded with ``state`` gives ``observer``'s qparams; kinds that do
    not are left out of the file (their trials calibrate as on a miss)."""
    try:
        fresh = factory()
        fresh.load_state_dict(state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = copy.deepcopy(observer).calculate_qparams()
            got = fresh.calculate_qparams()
        return all(torch.equal(a, b) for a, b in zip(expected, got))
    except Exception:  # noqa: BLE001 - any failure means "do not persist this kind"
        return False


def fingerprint(model: nn.Module, fused: GraphModule, space: TuningSpace,
                batches: Sequence[Any], watch: Collection[str]) -> str:
    """A hash of everything the calibration statistics depend on (see the module docstring)."""
    digest = hashlib.sha256()
    digest.update(f"tunekit-calibration-{FILE_VERSION} torch {torch.__version__}".encode())
    digest.update(fused.code.encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        _hash_value(digest, tensor)
    digest.update(json.dumps(space.to_dict(), sort_keys=True, default=str).encode())
    digest.update(repr(sorted(signature(f()) for f in _observer_kinds(space))).encode())
    digest.update(json.dumps(sorted(watch)).encode())
    for batch in batches:
        _hash_value(digest, batch)
    return digest.hexdigest()


def _hash_value(digest: Any, value: Any) -> None:
    """Feed tensors (dtype, shape, bytes), containers and plain values into ``digest``."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(f"K{key!s}".encode())
            _hash_value(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _hash_value(digest, item)
    elif hasattr(value, "__array__"):
        _hash_value(digest, torch.as_tensor(value.__array__()))
    else:
        digest.update(f"V{value!r}".encode())
