"""Turning a user's ``nn.Module`` into the ``torch.fx.GraphModule`` every pass rewrites."""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from tunekit.errors import ModelError


def to_graph(model: nn.Module) -> fx.GraphModule:
    """A traced copy of ``model`` in eval mode; the user's model is left as it was.

    Graph passes need a dataflow graph; torch.fx's symbolic trace gives one that stays an
    ``nn.Module`` (so the result runs, saves and tunes like the original).
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise ModelError("TorchScript models cannot be graph-optimized by tunekit; give the "
                         "eager model ('model.factory' in the YAML)")
    copied = copy.deepcopy(model).eval()
    try:
        return fx.symbolic_trace(copied)
    except Exception as exc:
        raise ModelError(f"torch.fx cannot trace {type(model).__name__} ({type(exc).__name__}: "
                         f"{exc}); graph optimization needs a traceable model") from exc


def count_nodes(graph_module: nn.Module) -> int:
    """Nodes that compute or fetch something (inputs, outputs and TorchScript constants left
    out), of an FX graph, a frozen TorchScript module, or the source of a compiled module."""
    if isinstance(graph_module, torch.jit.ScriptModule):
        return sum(1 for n in graph_module.graph.nodes() if n.kind() != "prim::Constant")
    graph_module = getattr(graph_module, "_orig_mod", graph_module)  # torch.compile'd: its source
    return sum(1 for n in graph_module.graph.nodes if n.op not in ("placeholder", "output"))


def finish(graph_module: fx.GraphModule) -> fx.GraphModule:
    """Drop what a rewrite left unused, check the graph, and regenerate its code."""
    graph_module.graph.eliminate_dead_code()
    graph_module.graph.lint()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    return graph_module
