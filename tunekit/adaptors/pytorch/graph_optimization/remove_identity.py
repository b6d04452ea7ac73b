"""Pass ``remove_identity``: drop ops that do nothing at inference (Identity, Dropout)."""

from __future__ import annotations

from torch import fx, nn
from torch.nn import functional as F

from tunekit.adaptors.pytorch.graph_optimization.trace import finish
from tunekit.graph.pipeline import GraphPass

_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout)


class RemoveIdentity(GraphPass):
    """Training-only and no-op nodes cost a Python call each at inference; their input is
    their output in eval mode, so users of the node take the input directly."""

    name = "remove_identity"
    framework = "pytorch"
    order = 10

    def run(self, graph: fx.GraphModule) -> fx.GraphModule:
        modules = dict(graph.named_modules())
        for node in list(graph.graph.nodes):
            is_module = node.op == "call_module" and isinstance(modules[node.target], _MODULES)
            is_function = node.op == "call_function" and node.target in _FUNCTIONS
            if (is_module or is_function) and node.args and isinstance(node.args[0], fx.Node):
                node.replace_all_uses_with(node.args[0])
                graph.graph.erase_node(node)
        return finish(graph)
