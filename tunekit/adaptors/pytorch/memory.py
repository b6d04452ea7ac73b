"""Peak resident memory of a torch model's inference, measured in a fresh process.

Why a fresh process: see :mod:`tunekit.peak_rss`, which also reads /proc for the child and runs
it. The child imports torch, reads the inputs, resets its high-water mark
(``/proc/self/clear_refs``), notes its RSS, loads the pickled model, resets the mark again (so
the transient copies of loading do not count) and runs every batch. The figure is ``VmHWM``
after inference minus the RSS before loading: the model's weights (int8 packed weights
included) plus the peak of activations and kernel workspaces, all native memory that
``tracemalloc`` never sees. Linux only.
"""

from __future__ import annotations

import pickle
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.fx import GraphModule
from torch.fx.graph_module import _format_import_statement, reduce_graph_module, sys_importer

from tunekit import peak_rss
from tunekit.errors import NotSupportedError

_CHILD = r"""
import sys

import torch
from tunekit.adaptors.pytorch.runtime import call_model
from tunekit.peak_rss import print_peak, reset_peak, status

torch.set_num_threads(int(sys.argv[3]))
inputs = torch.load(sys.argv[2], weights_only=True)
reset_peak()
before = status("VmRSS")
model = torch.load(sys.argv[1], weights_only=False).eval()
reset_peak()
with torch.inference_mode():
    for batch in inputs:
        call_model(model, batch)
print_peak(before)
"""


class _Pickler(pickle.Pickler):
    """Pickles FX graph modules whose generated code has string globals.

    torch 2.13's ``GraphModule.__reduce__`` writes an import line for every global of the
    generated code and fails on the string ``_torch_Tensor_`` that quantized graphs carry; an
    assignment line restores such values instead. Everything else is pickled as usual.
    """

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, GraphModule):
            return NotImplemented
        state = obj.__dict__.copy()
        del state["_graph"]  # rebuilt from the generated code, as GraphModule.__reduce__ does
        lines = {f"{name} = {value!r}" if isinstance(value, str)
                 else _format_import_statement(name, value, sys_importer)
                 for name, value in obj.recompile().globals.items()}
        return reduce_graph_module, (state, "\n".join(sorted(lines)))


_PICKLE = types.SimpleNamespace(__name__="pickle", Pickler=_Pickler)


def peak_memory(model: nn.Module, inputs: Sequence[Any], timeout: float = 300.0) -> int:
    """Peak resident bytes of ``model`` running ``inputs`` (see the module docstring)."""
    peak_rss.check_supported()
    with tempfile.TemporaryDirectory(prefix="tunekit-memory-") as folder:
        model_file, inputs_file = Path(folder, "model.pt"), Path(folder, "inputs.pt")
        try:
            torch.save(model, model_file, pickle_module=_PICKLE)  # type: ignore[arg-type]
        except Exception as exc:
            raise NotSupportedError(
                f"the memory objective runs the model in a fresh process, but "
                f"{type(model).__name__} cannot be pickled ({type(exc).__name__}: {exc}); define "
                "its class in an importable module (not __main__ or inside a function)") from exc
        torch.save(list(inputs), inputs_file)
        return peak_rss.run_child(_CHILD, [str(model_file), str(inputs_file),
                                           str(torch.get_num_threads())], timeout)
