"""TensorFlow graph optimization end to end: freeze, FP32 passes, then bf16 if allowed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunekit.graph.pipeline import run_passes, select
from tunekit.graph.registry import available
from tunekit.graph.result import GraphResult
from tunekit.graph.tensorflow.graph import FrozenGraph, freeze


def optimize(model: Any, precisions: Sequence[str], passes: Any) -> GraphResult:
    """The optimized :class:`FrozenGraph`; bf16 converts every op oneDNN supports (Grappler's
    own lists decide which; no accuracy tuning for TensorFlow yet).

    A bf16 graph skips the remapper: its fused ops (``_FusedConv2D``) declare no bf16 type, so
    the graph would not import; TF's runtime Grappler fuses them into oneDNN ops when it runs.
    """
    bf16 = "bf16" in precisions
    mix = "bf16" if bf16 else "fp32"
    chosen = [p for p in select(available("tensorflow"), passes) if mix in p.precisions]
    graph, reports = run_passes(freeze(model), chosen, FrozenGraph.node_count)
    bf16_ops = [n.name for n in graph.graph_def.node
                if any(v.type == 14 for v in n.attr.values())]  # 14: DT_BFLOAT16
    return GraphResult(graph, "tensorflow", tuple(precisions), reports,
                       bf16_ops if "bf16" in precisions else ())
