"""Files: loading FP32 models safely, saving and restoring tuned candidates.

Tuned candidates are saved as a plain dict of tensors and strings written with ``torch.save``,
readable with ``torch.load(weights_only=True)``: no pickled classes, so opening a tuned model can
not run code. The structure is not in the file; it is rebuilt from the FP32 model and the recipe
(the config), which is why :meth:`PyTorchAdaptor.load` takes both.

PT2E candidates (:mod:`.pt2e_backend`) are saved whole instead, as a ``torch.export`` archive
(``torch.export.save``: the graph, its int8 weights and tunekit's header as an extra file
``tunekit.json``; no pickle either). Loading one needs no FP32 model and no calibration; it is
compiled by Inductor on its first call.

Dynamic int8 LSTM/GRU keep their packed weights in ``torch.ScriptObject`` values that
``weights_only`` refuses. Those entries are left out of the file and listed under ``rebuilt``:
dynamic quantization of weights has no calibration, so rebuilding from the same FP32 weights
yields the same packed weights.
"""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunekit.errors import ModelError
from tunekit.space import QuantConfig

FORMAT = "tunekit.pytorch/1"
#: the extra file of a saved PT2E archive holding tunekit's header
PROGRAM_HEADER = "tunekit.json"


def state_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(model.state_dict())``: what a deployed checkpoint weighs."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def save_candidate(candidate: nn.Module, backend: str, config: QuantConfig, path: Path) -> None:
    state = candidate.state_dict()
    kept: OrderedDict[str, Any] = OrderedDict(
        (k, v) for k, v in state.items() if not isinstance(v, torch.ScriptObject))
    kept._metadata = getattr(state, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    payload = {"format": FORMAT, "backend": backend, "config": config.to_json(),
               "state_dict": kept, "rebuilt": sorted(set(state) - set(kept))}
    # a crash mid-write must leave the previous best model whole: write aside, then swap
    path = Path(path)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(payload, partial)
    os.replace(partial, path)


def save_program(candidate: Any, config: QuantConfig, path: Path) -> None:
    """A PT2E candidate as a ``torch.export`` archive, its batch dimension dynamic."""
    from tunekit.adaptors.pytorch import pt2e_backend

    program = getattr(candidate, "program", None)
    if program is None:
        args, kwargs, shapes = pt2e_backend.export_spec(candidate.example)
        with pt2e_backend.quiet_export(), torch.no_grad():
            program = torch.export.export(candidate.graph, args, kwargs or None,
                                          dynamic_shapes=shapes)
    header = json.dumps({"format": FORMAT, "backend": "pt2e", "config": config.to_json()})
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with partial.open("wb") as file:  # a file object: torch wants a .pt2 name for a path
        torch.export.save(program, file, extra_files={PROGRAM_HEADER: header})
    os.replace(partial, path)


def is_program(path: Path) -> bool:
    """Whether ``path`` is a ``torch.export`` archive written by :func:`save_program`."""
    return any(n.endswith(PROGRAM_HEADER) for n in _zip_names(path))


def load_program(path: Path, config: QuantConfig) -> Any:
    """The PT2E candidate saved in ``path`` (checked against the recipe), not yet compiled."""
    from tunekit.adaptors.pytorch import pt2e_backend

    extra = {PROGRAM_HEADER: ""}
    try:
        with pt2e_backend.quiet_export(), path.open("rb") as file:
            program = torch.export.load(file, extra_files=extra)
        header = json.loads(extra[PROGRAM_HEADER])
    except Exception as exc:
        raise ModelError(f"tuned model file {path} cannot be read as a torch.export archive "
                         f"({type(exc).__name__}: {exc})") from exc
    if header.get("format") != FORMAT or QuantConfig.from_json(header["config"]) != config:
        raise ModelError(f"{path} was saved for another config than the recipe given; load it "
                         "with the best_config.json saved beside it")
    candidate = pt2e_backend.PT2EModel(program.module())
    candidate.program = program
    return candidate


def read_candidate(path: Path, config: QuantConfig) -> dict[str, Any]:
    """The payload of a saved candidate, checked against the recipe it is loaded with."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"tuned model file {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch's own loader of quantized tensors
            warnings.filterwarnings("ignore", message=r"TypedStorage is deprecated")
            payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise ModelError(f"tuned model file {path} cannot be read ({type(exc).__name__}: "
                         f"{exc}); was it written by tunekit's pytorch adaptor?") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not a tunekit tuned PyTorch model (no {FORMAT!r} header)")
    if QuantConfig.from_json(payload["config"]) != config:
        raise ModelError(f"{path} was saved for another config than the recipe given; load it "
                         "with the best_config.json saved beside it")
    return payload


def restore(candidate: nn.Module, payload: dict[str, Any], path: Path) -> None:
    """Load the saved tensors into a rebuilt candidate; every tensor must find its place."""
    saved = payload["state_dict"]
    own = candidate.state_dict()
    state: OrderedDict[str, Any] = OrderedDict(saved)
    state._metadata = getattr(saved, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    for key in payload["rebuilt"]:  # packed by the rebuild itself, from the same FP32 weights
        if key in own:
            state[key] = own[key]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelError(f"{path} does not match the model rebuilt from its FP32 model and "
                         f"recipe (missing: {missing[:5]}, unexpected: {unexpected[:5]}); was it "
                         "saved from another FP32 model?")
    try:
        candidate.load_state_dict(state)
    except Exception as exc:
        raise ModelError(f"{path} does not fit the model rebuilt from its FP32 model and recipe "
                         f"({type(exc).__name__}: {exc})") from exc


def load_model_file(path: Path, allow_pickle: bool) -> nn.Module:
    """An FP32 model from ``path``: torch.export ``.pt2``, TorchScript, or (opt-in) a pickle."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    names = _zip_names(path)
    try:
        if path.suffix == ".pt2" or any(n.endswith("/archive_format") for n in names):
            return torch.export.load(str(path)).module()
        if any(n.endswith("/constants.pkl") for n in names):
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ModelError(f"model file {path} cannot be loaded "
                         f"({type(exc).__name__}: {exc})") from exc
    _check_kind(path, names)
    return _load_pickled(path, allow_pickle)


def _check_kind(path: Path, names: list[str]) -> None:
    """Name the problem before torch.load does: its error for any non-checkpoint file talks of
    unpickling, which misleads when the file is a Keras model or simply damaged."""
    if path.suffix in (".keras", ".h5") or {"metadata.json", "config.json"} <= set(names):
        raise ModelError(f"model file {path} is a Keras/TensorFlow model, not a PyTorch one; set "
                         "model.framework: tensorflow")
    with path.open("rb") as f:
        first = f.read(1)
    if not any(n.endswith("data.pkl") for n in names) and first != b"\x80":
        raise ModelError(f"model file {path} is not a PyTorch model file or is corrupt (neither "
                         "a torch.save/torch.export archive nor a pickle); re-save the model")


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _load_pickled(path: Path, allow_pickle: bool) -> nn.Module:
    try:
        content = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        if "weights_only" not in str(exc) and "Weights only" not in str(exc):
            raise ModelError(f"model file {path} is not a PyTorch model file or is corrupt "
                             f"({type(exc).__name__}: {exc})") from exc
        if not allow_pickle:
            raise ModelError(
                f"model file {path} holds a pickled Python object; unpickling it can run "
                "arbitrary code. Give 'model.factory' (a function that builds the model and "
                "loads its weights), or save it with torch.export.save(...) as a .pt2 file, or "
                "set allow_pickle=True on the pytorch adaptor if you trust the file") from None
        content = _unpickle(path)
    if isinstance(content, nn.Module):
        return content
    kind = "a state_dict (weights only)" if isinstance(content, dict) else type(content).__name__
    raise ModelError(f"model file {path} holds {kind}, not a model: give 'model.factory' (a "
                     "function that builds the architecture and loads these weights), or save the "
                     "model with torch.export.save(...) as a .pt2 file")


def _unpickle(path: Path) -> Any:
    try:
        return torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:
        raise ModelError(f"model file {path} cannot be unpickled ({type(exc).__name__}: {exc}); "
                         "the classes it refers to must be importable") from exc
