"""Move a ``dequantize`` down past int8-exact ops when the chain ends in a re-quantize.

Between two int8 ops whose activations are calibrated differently (say ``conv3`` by min/max and
``fc1`` by histogram), ``convert_fx`` dequantizes right after the first op and quantizes again
in front of the second, so whatever lies between runs in float::

    conv3 → dequantize → max_pool → flatten → quantize_per_tensor → fc1

On the digits CNN that float max-pool over the full-size tensor cost 1.5–5 % of the model's
time. Max-pool, flatten, reshape, ReLU and the like compute exactly the same on the int8 tensor
(dequantizing is monotonic and they only select, move or clamp at zero), so the dequantize can sit
just before the re-quantize instead, where the tensor is smaller::

    conv3 → max_pool → flatten → dequantize → quantize_per_tensor → fc1

The rewrite is exact: outputs are bit-identical (tests check it).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import nn
from torch.fx import GraphModule, Node

#: modules that give the same values on an int8 tensor as on its dequantized float
_EXACT_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Flatten, nn.Identity, nn.ReLU,
                  nn.Unflatten)
_EXACT_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze,
                    torch.transpose, torch.permute, torch.relu, nn.functional.relu,
                    nn.functional.max_pool1d, nn.functional.max_pool2d, nn.functional.max_pool3d,
                    operator.getitem}
_EXACT_METHODS = {"flatten", "reshape", "view", "squeeze", "unsqueeze", "transpose", "permute",
                  "contiguous", "relu"}


def _exact(node: Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(str(node.target)), _EXACT_MODULES)
    if node.op == "call_function":
        return node.target in _EXACT_FUNCTIONS
    return node.op == "call_method" and node.target in _EXACT_METHODS


def _is_requantize(node: Node) -> bool:
    return node.op == "call_function" and node.target is torch.quantize_per_tensor


def sink_dequantize(model: GraphModule) -> int:
    """Rewrite every ``dequantize → exact ops → quantize_per_tensor`` chain (each op read by the
    next only) so the exact ops run on the int8 tensor; returns the chains rewritten."""
    graph = model.graph
    modules = dict(model.named_modules())
    moved = 0
    for node in list(graph.nodes):
        if node.op != "call_method" or node.target != "dequantize" or len(node.users) != 1:
            continue
        chain: list[Node] = []
        current = next(iter(node.users))
        while _exact(current, modules) and len(current.users) == 1 \
                and current.args and current.args[0] is (chain[-1] if chain else node):
            chain.append(current)
            current = next(iter(current.users))
        if not chain or not _is_requantize(current) or current.args[0] is not chain[-1]:
            continue
        source: Any = node.args[0]
        chain[0].replace_input_with(node, source)
        with graph.inserting_before(current):
            late = graph.call_method("dequantize", (chain[-1],))
        current.replace_input_with(chain[-1], late)
        graph.erase_node(node)
        moved += 1
    if moved:
        graph.lint()
        model.recompile()
    return moved


__all__ = ["sink_dequantize"]
