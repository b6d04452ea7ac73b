"""Graph optimization beside quantization: FP32 passes and bf16+fp32 auto mixed precision.

This package is framework-free: the pass pipeline, the pass registry, the entry points and the
result. Each framework's passes, driver and AMP adaptor live in its adaptor plugin (e.g.
``tunekit/adaptors/pytorch/graph_optimization/``), reached through ``Adaptor.optimize_graph``
and ``Adaptor.save_optimized``, so importing tunekit stays free of torch and TensorFlow.
"""

from tunekit.graph.graph_result import GraphResult
from tunekit.graph.pipeline import GraphPass, PassReport

__all__ = ["GraphPass", "GraphResult", "PassReport"]
