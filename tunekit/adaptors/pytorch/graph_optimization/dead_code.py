"""Pass ``dead_code``: drop nodes whose results nobody uses, and modules nobody calls."""

from __future__ import annotations

from torch import fx

from tunekit.adaptors.pytorch.graph_optimization.trace import finish
from tunekit.graph.pipeline import GraphPass


class EliminateDeadCode(GraphPass):
    """A model often computes more than it returns (an auxiliary head, a debug tensor); torch.fx
    knows which ops are side-effect free, so those that feed nothing go."""

    name = "dead_code"
    framework = "pytorch"
    order = 60

    def run(self, graph: fx.GraphModule) -> fx.GraphModule:
        return finish(graph)
