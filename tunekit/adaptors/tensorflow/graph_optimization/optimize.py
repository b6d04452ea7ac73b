"""TensorFlow graph optimization end to end: freeze, FP32 passes, then bf16 if allowed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tunekit.adaptor import Adaptor
from tunekit.adaptors.tensorflow.graph_optimization.amp_adaptor import (
    COMPUTE_OPS,
    AMPAdaptor,
    bf16_nodes,
)
from tunekit.adaptors.tensorflow.graph_optimization.frozen_graph import FrozenGraph, freeze
from tunekit.adaptors.tensorflow.graph_optimization.grappler import AutoMixedPrecision
from tunekit.errors import ConfigError
from tunekit.graph.graph_result import GraphResult
from tunekit.graph.pipeline import PassReport, run_passes, select
from tunekit.graph.registry import available
from tunekit.result import TuneResult

#: runs the tuner on (the FP32-optimized graph, the AMP adaptor): see tunekit.graph.optimize
Tune = Callable[[FrozenGraph, AMPAdaptor], TuneResult]


def optimize(framework: Adaptor, model: Any, precisions: Sequence[str], passes: Any,
             tune: Tune | None = None) -> GraphResult:
    """The optimized :class:`FrozenGraph`: FP32 passes, then with bf16 allowed Grappler's AMP
    over every op it supports, or, with ``tune`` and fp32 allowed, over the ops the accuracy
    tuning leaves in bf16 (none left: the FP32 pipeline's result). ``framework`` is the
    TensorFlow adaptor the AMP adaptor wraps to run candidates.

    A bf16 graph skips the remapper: its fused ops (``_FusedConv2D``) declare no bf16 type, so
    the graph would not import; TF's runtime Grappler fuses them into oneDNN ops when it runs.
    """
    precisions = tuple(precisions)
    chosen = select(available("tensorflow"), passes)
    if "bf16" not in precisions:
        graph, reports = run_passes(freeze(model), [p for p in chosen if "fp32" in p.precisions],
                                    FrozenGraph.node_count)
        return GraphResult(graph, "tensorflow", precisions, reports)
    amp = next((p for p in chosen if isinstance(p, AutoMixedPrecision)), None)
    if amp is None:
        raise ConfigError("graph_optimization.passes.auto_mixed_precision",
                          "precisions include bf16 but the pass that converts to bf16 is "
                          "switched off; switch it on, or use precisions: [fp32]")
    graph, reports = run_passes(freeze(model), [p for p in chosen if p.order < amp.order],
                                FrozenGraph.node_count)
    later = [p for p in chosen if p.order > amp.order]
    adaptor = AMPAdaptor(framework)
    tuning = None
    if tune is not None and "fp32" in precisions:
        tuning = tune(graph, adaptor)
        best = tuning.best_config
        if best is None or not best.ops_in("bf16"):  # fp32 throughout: the FP32 fusions
            graph, more = run_passes(graph, [p for p in later if "fp32" in p.precisions],
                                     FrozenGraph.node_count)
            return GraphResult(graph, "tensorflow", precisions, [*reports, *more], (), tuning)
        before = graph.node_count()
        graph = tuning.best_model  # Grappler's AMP keeping the tuning's fp32 ops: built already
        reports.append(PassReport(amp.name, before, graph.node_count(), 0.0, "as tuned"))
    else:
        adaptor.capabilities(graph)  # refuses a CPU without native bf16
        later = [amp, *later]
    graph, more = run_passes(graph, [p for p in later if "bf16" in p.precisions],
                             FrozenGraph.node_count)
    ops = {n.name: n.op for n in graph.graph_def.node}
    bf16_ops = [name for name in bf16_nodes(graph) if ops[name] in COMPUTE_OPS]
    return GraphResult(graph, "tensorflow", precisions, [*reports, *more], bf16_ops, tuning)
