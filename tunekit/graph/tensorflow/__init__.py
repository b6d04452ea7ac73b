"""TensorFlow graph optimization over frozen GraphDefs (passes in their default order)."""

from __future__ import annotations

from tunekit.graph.pipeline import GraphPass
from tunekit.graph.tensorflow.fold_batchnorm import FoldBatchNorm
from tunekit.graph.tensorflow.grappler import (
                                               Arithmetic,
                                               AutoMixedPrecision,
                                               ConstantFold,
                                               Remapper,
)
from tunekit.graph.tensorflow.strip import Strip

BF16_PASS: GraphPass = AutoMixedPrecision()
#: bf16 conversion runs before the remapper: Grappler's bf16 lists name the unfused ops
PASSES: tuple[GraphPass, ...] = (Strip(), ConstantFold(), FoldBatchNorm(), Arithmetic(), BF16_PASS,
                                 Remapper())

__all__ = ["BF16_PASS", "PASSES"]
