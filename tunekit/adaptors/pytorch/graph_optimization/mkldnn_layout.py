"""Pass ``mkldnn_layout``: run conv regions in oneDNN's blocked layout, with fused epilogues.

torch's own FX ``optimize_for_inference`` converts Conv2d/Linear/ReLU/pooling runs to MKLDNN
modules and tensors, converting layout once at each region border instead of inside every conv
(the eager default). Its stock heuristic converts any run of three or more supported ops, which
also catches Linear-only models (transformers), where the conversions cost more than they save;
here only regions that contain a convolution are converted.
"""

from __future__ import annotations

import torch
from torch import fx, nn
from torch.fx.experimental import optimization

from tunekit.graph.pipeline import GraphPass


class MKLDNNLayout(GraphPass):
    name = "mkldnn_layout"
    framework = "pytorch"
    order = 105
    precisions = frozenset({"fp32"})

    def run(self, graph: fx.GraphModule) -> fx.GraphModule:
        if not isinstance(graph, fx.GraphModule):  # compiled by the inductor pass
            return graph
        modules = dict(graph.named_modules())
        if not torch.backends.mkldnn.is_available() or \
                not any(isinstance(m, nn.Conv2d) for m in modules.values()):
            return graph

        def has_conv(subgraph: optimization.MklSubgraph) -> bool:
            return any(n.op == "call_module" and isinstance(modules.get(n.target), nn.Conv2d)
                       for n in subgraph.nodes)

        config = {"conv_bn_fuse": False, "remove_dropout": False,
                  "mkldnn_layout_optimize": {"heuristic": has_conv}}
        result = optimization.optimize_for_inference(graph, config)
        return result if isinstance(result, fx.GraphModule) else fx.symbolic_trace(result)
