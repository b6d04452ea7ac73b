"""Pass ``fold_batchnorm``: fold an eval-mode BatchNorm into the Conv or Linear before it.

At inference BatchNorm is an affine map per channel, so it can live in the preceding op's weight
and bias (torch's own ``fuse_conv_bn_eval``/``fuse_linear_bn_eval`` do the arithmetic). The
folded model runs one op instead of two and, for int8/bf16 later, has one op to convert.
"""

from __future__ import annotations

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from tunekit.adaptors.pytorch.graph_optimization.trace import finish
from tunekit.adaptors.pytorch.runtime import replace_module
from tunekit.graph.pipeline import GraphPass

_PAIRS = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d),
          (nn.Linear, nn.BatchNorm1d))


class FoldBatchNorm(GraphPass):
    name = "fold_batchnorm"
    framework = "pytorch"
    order = 30

    def run(self, graph: fx.GraphModule) -> fx.GraphModule:
        modules = dict(graph.named_modules())
        for node in list(graph.graph.nodes):
            producer = node.args[0] if node.op == "call_module" and node.args else None
            if not isinstance(producer, fx.Node) or producer.op != "call_module":
                continue
            first, norm = modules[producer.target], modules[node.target]
            if not _foldable(first, norm) or len(producer.users) != 1:
                continue
            fold = fuse_linear_bn_eval if isinstance(first, nn.Linear) else fuse_conv_bn_eval
            replace_module(graph, producer.target, fold(first, norm))
            modules[producer.target] = graph.get_submodule(producer.target)
            node.replace_all_uses_with(producer)
            graph.graph.erase_node(node)
        return finish(graph)


def _foldable(first: nn.Module, norm: nn.Module) -> bool:
    pair = next(((a, b) for a, b in _PAIRS if type(first) is a and type(norm) is b), None)
    if pair is None or norm.training or not norm.track_running_stats:
        return False
    if isinstance(first, nn.Linear):  # BatchNorm1d over the Linear's features only
        return norm.num_features == first.out_features
    return True
