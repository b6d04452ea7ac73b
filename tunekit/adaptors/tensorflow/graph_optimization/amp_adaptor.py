"""bf16/fp32 tuning of a graph-optimized TensorFlow model through the ordinary tuner.

As for PyTorch (:mod:`tunekit.adaptors.pytorch.graph_optimization.amp_adaptor`),
accuracy-driven AMP is quantization tuning restricted to two precisions: :class:`AMPAdaptor`
offers bf16/fp32 for every op Grappler's oneDNN AMP converts on its own account (Conv2D, MatMul,
BatchMatMul, Einsum, ...), and builds a candidate by running that same Grappler rewrite with the
ops in fp32 kept out of it (:class:`.grappler.AutoMixedPrecision`). The ops between them
(BiasAdd, activations, pooling, reductions) join the bf16 region of the op that feeds them,
exactly as in the untuned conversion, so a candidate is what Grappler itself would build with a
smaller list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.adaptors.tensorflow.graph_optimization.frozen_graph import FrozenGraph
from tunekit.adaptors.tensorflow.graph_optimization.grappler import AutoMixedPrecision
from tunekit.errors import ModelError, NotSupportedError
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace

#: op types Grappler's oneDNN AMP converts by themselves (its allow list): the tunable ops
COMPUTE_OPS = frozenset({"Conv2D", "Conv3D", "DepthwiseConv2dNative", "MatMul", "BatchMatMul",
                         "BatchMatMulV2", "BatchMatMulV3", "Einsum", "Conv2DBackpropInput",
                         "Conv3DBackpropInputV2"})
_BFLOAT16 = 14  # DataType.DT_BFLOAT16


def bf16_nodes(graph: FrozenGraph) -> list[str]:
    """Names of the nodes that compute in bf16 (casts left out), in graph order."""
    return [n.name for n in graph.graph_def.node
            if n.op != "Cast" and any(v.type == _BFLOAT16 for v in n.attr.values())]


def candidates(graph: FrozenGraph) -> list[OpKey]:
    """The ops an unrestricted AMP rewrite converts that carry the arithmetic (COMPUTE_OPS)."""
    converted = set(bf16_nodes(AutoMixedPrecision().run(graph)))
    return [OpKey(n.name, n.op) for n in graph.graph_def.node
            if n.name in converted and n.op in COMPUTE_OPS]


class AMPAdaptor(Adaptor):
    """bf16 or fp32 per compute op of a :class:`FrozenGraph` (the FP32-optimized graph).

    ``framework`` is the TensorFlow adaptor whose ``optimize_graph`` runs: it runs the
    candidates (a frozen graph runs itself there), so evaluation and timing are the ones
    ``tunekit tune`` uses; this adaptor only adds the bf16/fp32 space and the candidates.
    """

    model_suffix = ".pb"

    def __init__(self, framework: Adaptor) -> None:
        self.framework = framework

    def capabilities(self, model: Any, approach: str = "static") -> TuningSpace:
        """Every op AMP converts, with (bf16, fp32); ``approach`` does not apply to floats."""
        from tunekit.adaptors.tensorflow.bf16 import supported

        if not supported():
            raise NotSupportedError("this CPU or TensorFlow build has no native bf16 (oneDNN "
                                    "with avx512_bf16/AMX): bf16 would be emulated and slower "
                                    "than fp32; use precisions: [fp32]")
        ops = candidates(model)
        if not ops:
            raise NotSupportedError("the graph has no op Grappler's bf16 AMP converts "
                                    f"({', '.join(sorted(COMPUTE_OPS))}); use precisions: [fp32]")
        return TuningSpace({op: (OpConfig("bf16"), OpConfig("fp32")) for op in ops})

    def quantize(self, model: Any, config: QuantConfig, calib_data: Iterable[DataBatch]) -> Any:
        return build(model, [op.name for op in config.ops_in("fp32")])

    def predict(self, model: Any, data: Iterable[DataBatch]) -> Iterator[tuple[np.ndarray, Any]]:
        return self.framework.predict(model, data)

    def run_batch(self, model: Any, inputs: Any) -> Any:
        return self.framework.run_batch(model, inputs)

    def save(self, candidate: Any, config: QuantConfig, path: Path) -> None:
        """The candidate's GraphDef (a ``.pb`` TensorFlow loads: no code runs on load), replacing
        the workspace's earlier best."""
        candidate.save(Path(path), force=True)

    def load(self, model: Any, config: QuantConfig, path: Path) -> Any:
        import tensorflow as tf

        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(Path(path).read_bytes())
        except Exception as exc:
            raise ModelError(f"{path} is not a TensorFlow GraphDef ({exc})") from exc
        return model.with_graph(graph_def)

    def model_size(self, model: Any) -> int:
        return model.graph_def.ByteSize()


def build(graph: FrozenGraph, fp32_ops: Iterable[str]) -> FrozenGraph:
    """``graph`` in bf16 where AMP converts, except ``fp32_ops`` and what only they feed."""
    return AutoMixedPrecision(keep_fp32=fp32_ops).run(graph)
