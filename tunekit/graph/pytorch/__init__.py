"""PyTorch graph optimization: FP32 passes over torch.fx graphs and bf16 auto mixed precision.

:data:`STRUCTURAL` passes keep every Conv/Linear an ordinary ``nn`` module, so their result can
still be tuned (bf16/fp32 per op) or quantized; :data:`LAYOUT` passes come next and pick the memory
layout the CPU runs fastest (MKLDNN modules for FP32, channels-last for bf16); :data:`LOWERING`
comes last (TorchScript freeze, kept where it measures faster on the example batch).
"""

from __future__ import annotations

from tunekit.graph.pipeline import GraphPass
from tunekit.graph.pytorch.channels_last import ChannelsLast
from tunekit.graph.pytorch.constant_fold import ConstantFold
from tunekit.graph.pytorch.cse import EliminateCommonSubexpressions
from tunekit.graph.pytorch.dead_code import EliminateDeadCode
from tunekit.graph.pytorch.fold_batchnorm import FoldBatchNorm
from tunekit.graph.pytorch.fuse_linear import FuseLinear
from tunekit.graph.pytorch.mkldnn_layout import MKLDNNLayout
from tunekit.graph.pytorch.remove_identity import RemoveIdentity
from tunekit.graph.pytorch.torchscript import TorchScript

STRUCTURAL: tuple[GraphPass, ...] = (RemoveIdentity(), ConstantFold(), FoldBatchNorm(),
                                     EliminateCommonSubexpressions(), FuseLinear(),
                                     EliminateDeadCode())
#: the layout pass of each precision mix: float32 only, or with bf16 ops
LAYOUT: dict[str, GraphPass] = {"fp32": MKLDNNLayout(), "bf16": ChannelsLast()}
LOWERING: GraphPass = TorchScript()
PASSES: tuple[GraphPass, ...] = (*STRUCTURAL, *LAYOUT.values(), LOWERING)

__all__ = ["LAYOUT", "LOWERING", "PASSES", "STRUCTURAL"]
