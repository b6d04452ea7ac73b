"""Pass ``channels_last``: store conv weights channels-last (NHWC), the layout oneDNN computes in.

A conv whose weight is channels-last produces a channels-last output, and the ops between convs
keep it, so the reorders at every conv of the default NCHW layout disappear. Used for bf16
models, where the MKLDNN-module path of :mod:`mkldnn_layout` (float32 only) does not apply.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from tunekit.graph.pipeline import GraphPass


class ChannelsLast(GraphPass):
    name = "channels_last"
    framework = "pytorch"
    order = 100
    precisions = frozenset({"bf16"})

    def run(self, graph: fx.GraphModule) -> fx.GraphModule:
        for module in graph.modules():
            if isinstance(module, nn.Conv2d):
                module.to(memory_format=torch.channels_last)
        return graph
