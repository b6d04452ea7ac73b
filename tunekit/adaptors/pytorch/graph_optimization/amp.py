"""Auto mixed precision: chosen Conv/Linear ops in bf16, casts only at bf16/fp32 borders.

Casting around every bf16 op (the adaptor's per-op :class:`~tunekit.adaptors.pytorch.bf16.
BF16Module`) pays two casts per op. Here the graph is walked once with each tensor's dtype known
(a shape propagation on an example batch): a bf16 op's output stays bf16 through the ops that
compute the same in either precision (ReLU/GELU, add, pooling, reshapes, matmul: the *follow*
ops), so a run of conv → relu → conv → add is one bf16 region with one cast in and one out. Every
other op (softmax, LayerNorm, reductions, user functions) gets float32 inputs, as in the FP32
model, and the model's outputs are float32.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Collection, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata
from torch.nn import functional as F

from tunekit.adaptors.pytorch.graph_optimization.fuse_attention import attention
from tunekit.adaptors.pytorch.graph_optimization.trace import finish
from tunekit.errors import ModelError

#: LSTM/GRU are left out: their nested (out, (h, c)) outputs would need casts per element
BF16_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_FOLLOW_MODULES = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.Flatten,
                   nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
                   nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Dropout)
_FOLLOW_FUNCTIONS = {operator.add, operator.mul, operator.getitem, operator.matmul, torch.add,
                     torch.mul, torch.matmul, torch.bmm, torch.cat, torch.split, torch.flatten,
                     torch.relu, torch.transpose, torch.reshape, torch.permute, F.relu, F.gelu,
                     F.silu, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
                     attention}  # fused SDPA: bf16 in, float32 softmax inside the kernel
_FOLLOW_METHODS = {"view", "reshape", "permute", "transpose", "contiguous", "flatten", "split",
                   "chunk", "unsqueeze", "squeeze", "relu", "add", "mul", "matmul", "size"}


def cast(value: Any, dtype: torch.dtype) -> Any:
    """``value`` in ``dtype`` if it is a floating tensor (or a tuple/list of them)."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(cast(v, dtype) for v in value)
    return value


def annotate(graph: fx.GraphModule, example_inputs: Sequence[Any]) -> None:
    """Record each node's output dtype (``node.meta['tensor_meta']``) from one FP32 run."""
    try:
        with torch.no_grad():
            ShapeProp(graph).propagate(*example_inputs)
    except Exception as exc:
        raise ModelError(f"running the traced model on the example batch failed "
                         f"({type(exc).__name__}: {exc}); mixed precision needs it") from exc


def mixed_precision(graph: fx.GraphModule, bf16_ops: Collection[str],
                    example_inputs: Sequence[Any]) -> fx.GraphModule:
    """A copy of ``graph`` with the modules named in ``bf16_ops`` in bf16 (``example_inputs``:
    the positional inputs of one batch, run once to learn each tensor's dtype)."""
    graph = copy.deepcopy(graph)
    annotate(graph, example_inputs)
    modules = dict(graph.named_modules())
    in_bf16: set[fx.Node] = set()
    casts: dict[tuple[fx.Node, torch.dtype], fx.Node] = {}

    def cast_inputs(node: fx.Node, sources: Collection[fx.Node], dtype: torch.dtype) -> None:
        def swap(arg: fx.Node) -> fx.Node:
            if arg not in sources:
                return arg
            if (arg, dtype) not in casts:
                with graph.graph.inserting_after(arg):
                    casts[(arg, dtype)] = graph.graph.call_function(cast, (arg, dtype))
            return casts[(arg, dtype)]

        node.args = fx.node.map_arg(node.args, swap)
        node.kwargs = fx.node.map_arg(node.kwargs, swap)

    for node in list(graph.graph.nodes):
        if node.op in ("placeholder", "get_attr") or node.target is cast:
            continue
        floats = [n for n in node.all_input_nodes if _is_float(n)]
        low = [n for n in floats if n in in_bf16]
        if node.op == "call_module" and node.target in bf16_ops:
            modules[node.target].to(torch.bfloat16)
            cast_inputs(node, [n for n in floats if n not in in_bf16], torch.bfloat16)
            in_bf16.add(node)
        elif node.op != "output" and _follows(node, modules) and low and len(low) == len(floats):
            in_bf16.add(node)
        elif low:
            cast_inputs(node, low, torch.float32)
    return finish(graph)


def _is_float(node: fx.Node) -> bool:
    meta = node.meta.get("tensor_meta")  # a TensorMetadata (a NamedTuple), or a tuple of them
    metas = [meta] if isinstance(meta, TensorMetadata) or not isinstance(meta, (tuple, list)) \
        else meta
    return bool(metas) and all(isinstance(m, TensorMetadata) and m.dtype.is_floating_point
                               for m in metas)


def _follows(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], _FOLLOW_MODULES)
    if node.op == "call_function":
        return node.target in _FOLLOW_FUNCTIONS
    return node.op == "call_method" and node.target in _FOLLOW_METHODS


def bf16_candidates(graph: fx.GraphModule) -> list[str]:
    """Names of the modules that can run in bf16 (Conv/Linear)."""
    return [name for name, module in graph.named_modules()
            if name and type(module) in BF16_MODULES]
