"""Pass ``cse``: common-subexpression elimination.

Two nodes that call the same pure op on the same inputs compute the same tensor; later ones are
replaced by the first. Modules count as pure (eval mode: dropout is gone, BatchNorm uses running
statistics), in-place and random ops never do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from tunekit.adaptors.pytorch.graph_optimization.constant_fold import _IMPURE
from tunekit.adaptors.pytorch.graph_optimization.trace import finish
from tunekit.graph.pipeline import GraphPass


class EliminateCommonSubexpressions(GraphPass):
    name = "cse"
    framework = "pytorch"
    order = 40

    def run(self, graph: fx.GraphModule) -> fx.GraphModule:
        seen: dict[Any, fx.Node] = {}
        for node in list(graph.graph.nodes):
            if node.op not in ("call_function", "call_method", "call_module", "get_attr"):
                continue
            if _impure(node) or (node.op == "call_module"
                                 and getattr(graph.get_submodule(node.target), "inplace", False)):
                continue
            key = (node.op, node.target, _freeze(node.args), _freeze(node.kwargs))
            try:
                earlier = seen.setdefault(key, node)
            except TypeError:  # an unhashable literal argument: leave the node alone
                continue
            if earlier is not node:
                node.replace_all_uses_with(earlier)
                graph.graph.erase_node(node)
        return finish(graph)


def _impure(node: fx.Node) -> bool:
    name = getattr(node.target, "__name__", node.target) if node.op != "call_module" else ""
    inplace = isinstance(name, str) and name.endswith("_") and not name.endswith("__")
    return node.target in _IMPURE or inplace or bool(node.kwargs.get("inplace")) or \
        node.target is torch.Tensor.copy_


def _freeze(value: Any) -> Any:
    """A hashable stand-in of an argument structure (nodes hash by identity)."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    if isinstance(value, slice):
        return ("slice", _freeze(value.start), _freeze(value.stop), _freeze(value.step))
    return value
