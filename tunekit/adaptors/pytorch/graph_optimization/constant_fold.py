"""Pass ``constant_fold``: compute once what does not depend on the inputs.

Position ids through an embedding, a transposed weight, a scale computed from parameters: such
subgraphs run on every call in eager mode. Each node whose inputs are all constants (parameters,
buffers or literals) is evaluated once here and becomes a buffer of the graph module.
"""

from __future__ import annotations

import torch
from torch import fx

from tunekit.adaptors.pytorch.graph_optimization.trace import finish
from tunekit.graph.pipeline import GraphPass

#: ops whose result may differ between calls: never folded
_IMPURE = {torch.rand, torch.randn, torch.randint, torch.rand_like, torch.randn_like,
           torch.empty, torch.empty_like}


class ConstantFold(GraphPass):
    name = "constant_fold"
    framework = "pytorch"
    order = 20

    def run(self, graph: fx.GraphModule) -> fx.GraphModule:
        values: dict[fx.Node, object] = {}
        for node in list(graph.graph.nodes):
            if node.op == "get_attr":
                values[node] = _fetch(graph, node.target)
                continue
            if node.op not in ("call_function", "call_method", "call_module") or \
                    node.target in _IMPURE or not _constant_inputs(node, values):
                continue
            args = fx.node.map_arg(node.args, values.__getitem__)
            kwargs = fx.node.map_arg(node.kwargs, values.__getitem__)
            with torch.no_grad():
                values[node] = _call(graph, node, args, kwargs)
        for node in [n for n in values if n.op != "get_attr"]:
            if isinstance(values[node], torch.Tensor) and _has_variable_user(node, values):
                self._replace(graph, node, values[node])
        return finish(graph)

    @staticmethod
    def _replace(graph: fx.GraphModule, node: fx.Node, value: torch.Tensor) -> None:
        name = f"_folded_{node.name}"
        graph.register_buffer(name, value.detach().clone())
        with graph.graph.inserting_before(node):
            constant = graph.graph.get_attr(name)
        node.replace_all_uses_with(constant)


def _constant_inputs(node: fx.Node, values: dict[fx.Node, object]) -> bool:
    inputs = node.all_input_nodes
    return all(n in values for n in inputs) and (bool(inputs) or node.op == "call_module")


def _has_variable_user(node: fx.Node, values: dict[fx.Node, object]) -> bool:
    """Fold only the frontier: a constant read by an input-dependent node (or the output)."""
    return any(user not in values for user in node.users)


def _fetch(graph: fx.GraphModule, target: str) -> object:
    owner, _, attr = target.rpartition(".")
    return getattr(graph.get_submodule(owner) if owner else graph, attr)


def _call(graph: fx.GraphModule, node: fx.Node, args: tuple, kwargs: dict) -> object:
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        self_obj, *rest = args
        return getattr(self_obj, node.target)(*rest, **kwargs)
    return graph.get_submodule(node.target)(*args, **kwargs)
