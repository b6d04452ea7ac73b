"""Pass ``fuse_linear``: Linears that read the same input become one wider Linear.

Attention's query/key/value projections are three GEMMs over one activation; one GEMM with the
weights stacked reads the activation once and keeps the cores busy longer per call, which is
faster on CPU. The wide output is split back, so the rest of the graph is unchanged.
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from tunekit.adaptors.pytorch.graph_optimization.trace import finish
from tunekit.graph.pipeline import GraphPass


class FuseLinear(GraphPass):
    name = "fuse_linear"
    framework = "pytorch"
    order = 50

    def run(self, graph: fx.GraphModule) -> fx.GraphModule:
        modules = dict(graph.named_modules())
        groups: dict[fx.Node, list[fx.Node]] = {}
        for node in graph.graph.nodes:
            if node.op == "call_module" and type(modules[node.target]) is nn.Linear \
                    and len(node.args) == 1 and not node.kwargs \
                    and isinstance(node.args[0], fx.Node):
                groups.setdefault(node.args[0], []).append(node)
        for source, linears in groups.items():
            if len(linears) > 1 and _same_kind([modules[n.target] for n in linears]):
                _fuse(graph, source, linears, [modules[n.target] for n in linears])
        return finish(graph)


def _same_kind(linears: list[nn.Linear]) -> bool:
    first = linears[0]
    return all(m.in_features == first.in_features and (m.bias is None) == (first.bias is None)
               and m.weight.dtype == first.weight.dtype for m in linears)


def _fuse(graph: fx.GraphModule, source: fx.Node, nodes: list[fx.Node],
          linears: list[nn.Linear]) -> None:
    fused = nn.Linear(linears[0].in_features, sum(m.out_features for m in linears),
                      bias=linears[0].bias is not None)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([m.weight for m in linears]))
        if fused.bias is not None:
            fused.bias.copy_(torch.cat([m.bias for m in linears]))
    name = "_fused_" + "_".join(n.target.replace(".", "_") for n in nodes)
    graph.add_submodule(name, fused.eval())
    first = min(nodes, key=lambda n: list(graph.graph.nodes).index(n))
    with graph.graph.inserting_before(first):
        wide = graph.graph.call_module(name, (source,))
        parts = graph.graph.call_function(torch.split, (wide, [m.out_features for m in linears]),
                                          {"dim": -1})
        for index, node in enumerate(nodes):
            piece = graph.graph.call_function(operator.getitem, (parts, index))
            node.replace_all_uses_with(piece)
    for node in nodes:
        graph.graph.erase_node(node)

