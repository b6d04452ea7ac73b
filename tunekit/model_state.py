"""Per-model state of an adaptor: what it derives from one FP32 model once and reuses per trial.

The tuner calls an adaptor hundreds of times with the same FP32 model. Parsing the model,
tracing it, its FP32 session and its calibration statistics are made once and kept here, one
entry per model, through :meth:`tunekit.adaptor.Adaptor.model_state`. One class owns the rules
every adaptor used to re-implement: an entry is found by the model object itself (never by
equality: two equal ONNX protos are two models to the user), it cannot outlive its model nor
be served to another object that happens to reuse the id, and a model path is one model
however its string is spelled.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

State = TypeVar("State")

#: Models without weak references (``onnx.ModelProto``, paths) are held by the entry; this
#: many of them are kept, the least recently used dropped first (one tuning has one model).
STRONG_LIMIT = 4

#: A weakly watched model whose state refers back to it (a Keras model a TensorFlow state keeps
#: as its source) is never collected while the entry lives; so every entry counts against this
#: bound too, the least recently used dropped first: a leak of that kind stays bounded.
LIMIT = 16


class ModelStates:
    """The per-model states of one adaptor instance.

    Models that allow weak references (torch modules, Keras models) are watched weakly: the
    entry goes when the model is collected. The others are held strongly, so their ``id`` cannot
    be reused while the entry exists, and at most :data:`STRONG_LIMIT` of them are kept.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()

    def get(self, model: Any, build: Callable[[], State]) -> State:
        """The state of ``model``, made by ``build()`` on first use."""
        key = _key(model)
        entry = self._entries.get(key)
        if entry is not None and _belongs(entry[0], model):
            self._entries.move_to_end(key)
            return entry[1]
        state = build()
        self._entries[key] = (self._holder(key, model), state)
        strong = [k for k, (h, _) in self._entries.items() if not isinstance(h, weakref.ref)]
        for old in strong[:-STRONG_LIMIT] + list(self._entries)[:-LIMIT]:
            self._entries.pop(old, None)
        return state

    def _holder(self, key: Any, model: Any) -> Any:
        """A weak reference that drops the entry with the model where the model allows one;
        else the model itself (a path: its resolved form), held until the entry is dropped."""
        if key[0] == "path":
            return key[1]
        try:
            return weakref.ref(model, lambda ref, key=key: self._forget(key, ref))
        except TypeError:  # no weak references (onnx.ModelProto): bounded in get
            return model

    def __len__(self) -> int:
        return len(self._entries)

    def _forget(self, key: Any, ref: weakref.ref) -> None:
        """Drop the entry of a collected model (only if it is still that model's entry)."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] is ref:
            del self._entries[key]


def _key(model: Any) -> Any:
    """A path by its resolved form (``a.onnx`` and ``./a.onnx`` are one model); an object by id."""
    if isinstance(model, (str, os.PathLike)):
        return ("path", str(Path(model).resolve()))
    return ("object", id(model))


def _belongs(holder: Any, model: Any) -> bool:
    """Whether an entry held by ``holder`` is ``model``'s: a path's key already says so; an
    object's entry must hold that very object (a collected model's id may be reused)."""
    if isinstance(model, (str, os.PathLike)):
        return True
    return (holder() if isinstance(holder, weakref.ref) else holder) is model


__all__ = ["LIMIT", "STRONG_LIMIT", "ModelStates"]
