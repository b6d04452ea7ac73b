"""int8 for the glue between int8 ops ("followers"): no float islands in an int8 model.

With a global qconfig of ``None`` every op outside the tuning space runs in float, so each
activation, gate, pooling, add, multiply or concat between two int8 convs costs a dequantize, a
float op and a quantize. On a MobileNetV3-like net the all-int8 candidate carried 13
dequantizes where torch.ao's own default int8 carries 1, and ran 0.71× as fast. The glue is
therefore given int8 qconfigs here, by data flow over the fused graph:

- **Which ops are glue** is read from torch.ao's x86 backend config (the ops its x86 lowering
  has int8 kernels or shared-qparams rules for: add, mul, matmul, cat, hardswish, ELU,
  BatchNorm, the fixed-range sigmoid/hardsigmoid/tanh/softmax, pooling, ReLU, shape ops...),
  less the weighted ops (convs, linears, embeddings, recurrent cells: those are tuned, or not
  quantized at all). Torch's table is the ground truth of what ``convert_fx`` can lower.
- **When glue is int8**: every tensor input comes from a static int8 op, from int8 glue or from
  a glue op that stayed float (a "stream"), and at least one from the first two. It takes the
  qconfig of its first int8 producer; the fixed-range ops take torch's fixed-qparams observer
  (their int8 kernels accept no other scale). Shape ops and pooling follow their input.
- **What glue never quantizes**: the output of a bf16/fp32/dynamic op, the model's inputs or any
  other float op. So the activation after a fallen-back conv stays float, and the next block's
  add, which reads that float stream and an int8 branch, is int8 again, as in the all-int8 model
  (otherwise one fallback would turn every later add float).
- **Glue in front of a fallen-back op** follows it into float when nothing int8 reads it: an
  int8 gate or add whose only (transitive) readers are float would only round the input that the
  fallback was meant to keep exact. The all-int8 config has no such glue, so it matches torch's
  default layout.

Call-site addressing: ``QConfigMapping.set_module_name_object_type_order`` names the n-th call of
a function in a module. Candidates are prepared from the fused, flattened ``GraphModule``, where
every function call sits in the root module, so the n-th node of a target in graph order is that
call. Method calls cannot be addressed one by one (torch keys them by method name only), so
:func:`methods_as_functions` rewrites ``x.mul(y)``/``x.sigmoid()``... into their ``torch``
functions once, when the fused graph is built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.ao.quantization import QConfig, QConfigMapping
from torch.fx import GraphModule, Node

from tunekit.adaptors.pytorch.capabilities import TUNABLE_TYPES

#: Modules that do not change values on an int8 tensor and that FX lowering runs on int8 even
#: with no qconfig of their own (not in the backend table): looked through when tracing sources.
LOOK_THROUGH_MODULES: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Unflatten)
LOOK_THROUGH_METHODS = ("view", "reshape", "flatten", "contiguous", "transpose", "permute",
                        "squeeze", "unsqueeze", "relu")
#: Functions that torch's table lists under another name only: ``torch.relu`` appears in fused
#: patterns only, so after a conv it cost a requantize that ``F.relu`` (shared qparams) avoids.
SAME_FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {torch.relu: nn.functional.relu}
#: Weighted ops in torch's table: tuned ops, or ops tunekit does not quantize (not glue).
_WEIGHTED_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd, nn.Linear, nn.Embedding, nn.EmbeddingBag, nn.RNNBase,
    nn.RNNCellBase, torch.ao.nn.intrinsic.modules.fused._FusedModule)
_WEIGHTED_FUNCTIONS = frozenset({
    nn.functional.conv1d, nn.functional.conv2d, nn.functional.conv3d, nn.functional.linear,
    nn.functional.conv_transpose1d, nn.functional.conv_transpose2d,
    nn.functional.conv_transpose3d, nn.functional.embedding, nn.functional.embedding_bag})
SHARE, OWN, FIXED = "share", "own", "fixed"
#: Marks a glue op that stayed float: its output may still be quantized by later glue.
STREAM = "stream"
Source = Any  # a QConfig (int8), STREAM, or None (float from outside the glue)


@functools.lru_cache(maxsize=1)
def glue_table() -> dict[Any, str]:
    """Module type, function or method name → ``share`` (output on the input's qparams),
    ``own`` (output observed on its own) or ``fixed`` (fixed output qparams), from torch.ao's
    x86 backend config; weighted ops left out."""
    import torch.ao.quantization.backend_config.utils  # noqa: F401  (x86 needs it imported)
    from torch.ao.quantization.backend_config import ObservationType
    from torch.ao.quantization.backend_config.x86 import get_x86_backend_config

    table: dict[Any, str] = {}
    for config in get_x86_backend_config().configs:
        pattern = config.pattern
        if pattern is None or isinstance(pattern, tuple) or _weighted(pattern):
            continue
        if config.observation_type == ObservationType.OUTPUT_SHARE_OBSERVER_WITH_INPUT:
            table[pattern] = SHARE
        elif config.observation_type == ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT:
            table[pattern] = FIXED if pattern in fixed_observers() else OWN
    return table


def _weighted(pattern: Any) -> bool:
    if isinstance(pattern, type):
        # fused modules are conv/linear + BN/ReLU, except BNReLU (a standalone BatchNorm's)
        return issubclass(pattern, _WEIGHTED_TYPES) and not pattern.__name__.startswith("BNReLU")
    return pattern in _WEIGHTED_FUNCTIONS


@functools.lru_cache(maxsize=1)
def fixed_observers() -> dict[Any, Any]:
    """torch.ao's fixed-qparams observers of sigmoid, hardsigmoid, tanh and softmax (their int8
    kernels produce one fixed scale); empty if a torch release moves the table."""
    try:
        from torch.ao.quantization.qconfig_mapping import _FIXED_QPARAMS_OP_TO_OBSERVER
    except ImportError:
        return {}
    return dict(_FIXED_QPARAMS_OP_TO_OBSERVER)


def _pattern(node: Node, modules: Mapping[str, nn.Module]) -> Any:
    if node.op == "call_module":
        return type(modules.get(str(node.target)))
    if node.op in ("call_function", "call_method"):
        return node.target
    return None


def glue_kind(node: Node, modules: Mapping[str, nn.Module]) -> str | None:
    """``share``/``own``/``fixed`` for a glue node, None for any other node."""
    pattern = _pattern(node, modules)
    try:
        return glue_table().get(pattern)
    except TypeError:  # an unhashable target
        return None


def methods_as_functions(graph_module: GraphModule) -> int:
    """Rewrite method calls of glue ops (``x.mul(y)``, ``x.sigmoid()``, ``x.mean(d)``) into the
    same ``torch`` function, which FX can give a qconfig per call site, and the functions of
    :data:`SAME_FUNCTIONS` into their twins; returns the count."""
    table = glue_table()
    rewritten = 0
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and _hashable_in(node.target, SAME_FUNCTIONS):
            node.target = SAME_FUNCTIONS[node.target]
            rewritten += 1
        if node.op != "call_method":
            continue
        function = getattr(torch, str(node.target), None)
        if function is None or not _hashable_in(function, table):
            continue
        node.op, node.target = "call_function", function
        rewritten += 1
    if rewritten:
        graph_module.graph.lint()
        graph_module.recompile()
    return rewritten


def _hashable_in(value: Any, table: Mapping[Any, str]) -> bool:
    try:
        return value in table
    except TypeError:
        return False


def _looks_through(node: Node, modules: Mapping[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(str(node.target)), LOOK_THROUGH_MODULES)
    return node.op == "call_method" and node.target in LOOK_THROUGH_METHODS


class _Plan:
    """One pass over the fused graph: each node's source, and the glue that goes int8."""

    def __init__(self, fused: GraphModule, int8_ops: Mapping[str, QConfig],
                 kept_float: set[str]) -> None:
        self.modules = dict(fused.named_modules())
        self.int8_ops = int8_ops
        self.kept_float = kept_float
        self.sources: dict[str, Source] = {}
        self.int8: dict[str, QConfig] = {}
        self.kinds: dict[str, str] = {}
        for node in fused.graph.nodes:
            self.sources[node.name] = self._source(node)

    def _source(self, node: Node) -> Source:
        if node.op == "call_module" and node.target in self.int8_ops:
            return self.int8_ops[str(node.target)]
        inputs = [self.sources.get(n.name) for n in node.all_input_nodes]  # cat's list too
        kind = glue_kind(node, self.modules)
        if kind is None:
            return inputs[0] if inputs and _looks_through(node, self.modules) else None
        self.kinds[node.name] = kind
        if kind == SHARE and len(inputs) == 1:
            if isinstance(inputs[0], QConfig):
                self.int8[node.name] = inputs[0]
            return inputs[0]
        int8 = [source for source in inputs if isinstance(source, QConfig)]
        if not int8 or None in inputs or node.name in self.kept_float \
                or kind == SHARE and not self._scales_can_be_shared(node):
            return STREAM
        qconfig = _fixed_qconfig(node, self.modules, int8[0]) if kind == FIXED else int8[0]
        self.int8[node.name] = qconfig
        return qconfig

    def _scales_can_be_shared(self, node: Node) -> bool:
        """Whether a concat's inputs can all be given its scale: not when one comes (through
        shape ops) from a module called elsewhere too, whose one int8 module has one scale."""
        calls: dict[str, int] = {}
        for other in node.graph.nodes:
            if other.op == "call_module":
                calls[str(other.target)] = calls.get(str(other.target), 0) + 1
        for source in node.all_input_nodes:
            while self.kinds.get(source.name) == SHARE and source.all_input_nodes:
                source = source.all_input_nodes[0]
            if source.op == "call_module" and calls[str(source.target)] > 1:
                return False
        return True


def _fixed_qconfig(node: Node, modules: Mapping[str, nn.Module], like: QConfig) -> QConfig:
    """torch's fixed-range observer for a sigmoid-like op; a fake quantizer around it when
    ``like`` fake-quantizes (quantization-aware training)."""
    observer = fixed_observers()[_pattern(node, modules)]
    if isinstance(like.activation(), torch.ao.quantization.FakeQuantizeBase):
        observer = torch.ao.quantization.FixedQParamsFakeQuantize.with_args(observer=observer)
    return QConfig(activation=observer, weight=like.weight)


def plan_glue(fused: GraphModule, int8_ops: Mapping[str, QConfig]) -> dict[str, QConfig]:
    """By node name, the qconfig of every glue node of ``fused`` that runs in int8 when the
    static int8 ops are ``int8_ops`` (by module name): see the module docstring for the rules."""
    kept_float: set[str] = set()
    while True:
        plan = _Plan(fused, int8_ops, kept_float)
        before_fallback = _before_fallback(fused, plan)
        if not before_fallback:
            return plan.int8
        kept_float |= before_fallback


def _before_fallback(fused: GraphModule, plan: _Plan) -> set[str]:
    """int8 glue with its own output scale whose readers (through shape ops) are all float and
    include a fallen-back op: rounding it would only add error in front of that op."""
    reads_int8: dict[str, bool] = {}
    reads_fallback: dict[str, bool] = {}
    found = set()
    for node in reversed(list(fused.graph.nodes)):
        int8_users = fallback_users = False
        for user in node.users:
            if user.op == "call_module" and user.target in plan.int8_ops:
                int8_users = True
            elif user.op == "call_module" and _is_tunable(user, plan):
                fallback_users = True
            elif plan.kinds.get(user.name) == SHARE or _looks_through(user, plan.modules):
                int8_users |= reads_int8.get(user.name, False)
                fallback_users |= reads_fallback.get(user.name, False)
            elif user.name in plan.int8:
                int8_users = True
        reads_int8[node.name], reads_fallback[node.name] = int8_users, fallback_users
        if node.name in plan.int8 and plan.kinds[node.name] != SHARE and fallback_users \
                and not int8_users:
            found.add(node.name)
    return found


def _is_tunable(node: Node, plan: _Plan) -> bool:
    return type(plan.modules.get(str(node.target))) in TUNABLE_TYPES


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
    """Give int8 qconfigs to the glue around ``int8_ops`` (static ops by name) in ``mapping``.

    A glue module called more than once (torchvision shares one ReLU per block) gets a qconfig
    only if every call is int8: one qconfig would quantize the other calls' inputs too. Returns
    the names of the int8 glue nodes (for logging and tests).
    """
    plan = plan_glue(fused, int8_ops)
    order = _call_order(fused)
    by_module: dict[str, list[Node]] = {}
    for node in fused.graph.nodes:
        if node.op == "call_module":
            by_module.setdefault(str(node.target), []).append(node)
    followers: list[str] = []
    for node in fused.graph.nodes:
        qconfig = plan.get(node.name)
        if qconfig is None:
            continue
        if node.op == "call_function":
            mapping.set_module_name_object_type_order("", node.target, order[node.name], qconfig)
        elif node.op == "call_module" and all(n.name in plan for n in by_module[str(node.target)]):
            mapping.set_module_name(str(node.target), qconfig)
        else:
            continue
        followers.append(node.name)
    return followers


__all__ = ["FIXED", "OWN", "SHARE", "STREAM", "add_followers", "glue_kind", "glue_table",
           "methods_as_functions", "plan_glue"]
