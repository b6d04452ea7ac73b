"""int8 for the glue between int8 ops: residual adds and muls ("followers").

With a global qconfig of ``None`` every op outside the tuning space runs in float, so a ResNet
block dequantizes its conv output, adds the shortcut in float, and quantizes again for the next
conv: a ResNet-18-like net then runs 3.7× instead of 5.8× faster than FP32 at batch 32
(docs/pytorch-backend.md). So a binary op (``+``, ``*``, two tensor inputs) runs in int8 too,
with the qconfig of its first int8 producer, when

- at least one input comes from a static int8 op, and
- every input comes from a static int8 op or from another follower (an int8 one, or one that
  stayed float: a residual stream),

looking through ops that run on quantized tensors as they are (pooling, ReLU, flatten, ...). A
ReLU that is a follower's only reader follows it, so FX fuses the pair (``quantized.add_relu``).

What a follower never quantizes: the output of a bf16/fp32 op, the model's inputs, or the output
of any other float op. So the add that reads a fallen-back conv stays float, exactly as the
tuning space promises; the next block's add, which reads that float residual stream, is int8
again, as it is in the all-int8 model (otherwise one fallback would turn every later add float).

Indices: ``QConfigMapping.set_module_name_object_type_order`` addresses the n-th call of a
function in a module. Candidates are prepared from the fused, flattened ``GraphModule``, where
every function call sits in the root module, so the n-th node of a target in graph order is that
call.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.ao.quantization import QConfig, QConfigMapping
from torch.fx import GraphModule, Node

#: Ops whose output is int8 when their first input is (they run on quantized tensors as is).
PASS_MODULES: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d, nn.ReLU, nn.ReLU6, nn.Flatten, nn.Identity, nn.Dropout)
PASS_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    torch.flatten, torch.relu, nn.functional.relu, nn.functional.max_pool2d,
    nn.functional.adaptive_avg_pool2d, torch.transpose, torch.reshape)
PASS_METHODS = ("flatten", "view", "reshape", "relu", "contiguous", "transpose", "permute")
#: Binary ops that get int8 when all their inputs are int8. Not ``torch.cat``: its int8 kernel
#: wants every input on one scale, which inputs from different int8 ops never share.
FOLLOWER_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    operator.add, torch.add, operator.mul, torch.mul)
RELU_FUNCTIONS: tuple[Callable[..., Any], ...] = (torch.relu, nn.functional.relu)


def _tensor_inputs(node: Node) -> list[Node]:
    return [a for a in node.args if isinstance(a, Node)]


#: Marks a follower that stayed float: its output may still be quantized by a later follower.
STREAM = "stream"
Source = Any  # a QConfig (int8), STREAM, or None (float from outside the followers)


class _Sources:
    """Where each node's output of the fused graph comes from: an int8 op (its qconfig), a float
    follower (STREAM) or any other float op (None)."""

    def __init__(self, fused: GraphModule, int8_ops: Mapping[str, QConfig]) -> None:
        self._modules = dict(fused.named_modules())
        self._int8_ops = int8_ops
        self._memo: dict[str, Source] = {}

    def mark(self, node: Node, source: Source) -> None:
        self._memo[node.name] = source

    def of(self, node: Node) -> Source:
        if node.name not in self._memo:
            self._memo[node.name] = self._trace(node)
        return self._memo[node.name]

    def _trace(self, node: Node) -> Source:
        if node.op == "call_module":
            if node.target in self._int8_ops:
                return self._int8_ops[str(node.target)]
            passes = isinstance(self._modules.get(str(node.target)), PASS_MODULES)
        elif node.op == "call_function":
            passes = node.target in PASS_FUNCTIONS
        elif node.op == "call_method":
            passes = node.target in PASS_METHODS
        else:
            passes = False
        first = node.args[0] if node.args else None
        return self.of(first) if passes and isinstance(first, Node) else None


def _call_order(fused: GraphModule) -> dict[str, int]:
    """For each function-call node, how many calls of the same function precede it."""
    counts: dict[Any, int] = {}
    order: dict[str, int] = {}
    for node in fused.graph.nodes:
        if node.op == "call_function":
            order[node.name] = counts.get(node.target, 0)
            counts[node.target] = order[node.name] + 1
    return order


def add_followers(mapping: QConfigMapping, fused: GraphModule,
                  int8_ops: Mapping[str, QConfig]) -> list[str]:
    """Give int8 qconfigs to the followers of ``int8_ops`` (static ops by name) in ``mapping``.

    Returns the names of the follower nodes (for logging and tests).
    """
    sources = _Sources(fused, int8_ops)
    modules = dict(fused.named_modules())
    order = _call_order(fused)
    followers: list[str] = []
    for node in fused.graph.nodes:
        if node.op != "call_function" or node.target not in FOLLOWER_FUNCTIONS:
            continue
        inputs = [sources.of(n) for n in _tensor_inputs(node)]
        int8 = [source for source in inputs if source is not None and source != STREAM]
        if len(inputs) < 2 or not int8 or None in inputs:
            sources.mark(node, STREAM)
            continue
        mapping.set_module_name_object_type_order("", node.target, order[node.name], int8[0])
        sources.mark(node, int8[0])
        followers.append(node.name)
        _follow_relu(mapping, node, modules, int8[0], order)
    return followers


def _follow_relu(mapping: QConfigMapping, node: Node, modules: Mapping[str, nn.Module],
                 qconfig: QConfig, order: Mapping[str, int]) -> None:
    """A ReLU that alone reads ``node`` gets its qconfig, so FX fuses the pair (add_relu)."""
    if len(node.users) != 1:
        return
    user = next(iter(node.users))
    if user.op == "call_module" and isinstance(modules.get(str(user.target)), nn.ReLU):
        # a ReLU module called elsewhere too (torchvision shares one per block) would quantize
        # those other, possibly float, inputs as well: leave it float then
        calls = [n for n in node.graph.nodes if n.op == "call_module" and n.target == user.target]
        if len(calls) == 1:
            mapping.set_module_name(str(user.target), qconfig)
    elif user.op == "call_function" and user.target in RELU_FUNCTIONS:
        mapping.set_module_name_object_type_order("", user.target, order[user.name], qconfig)
