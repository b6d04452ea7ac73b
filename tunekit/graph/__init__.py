"""Graph optimization beside quantization: FP32 passes and bf16+fp32 auto mixed precision.

Framework code lives in :mod:`tunekit.adaptors.pytorch.graph_optimization` and :mod:`tunekit.adaptors.tensorflow.graph_optimization`
(imported on use, so importing tunekit stays free of torch and TensorFlow).
"""

from tunekit.graph.graph_result import GraphResult
from tunekit.graph.pipeline import GraphPass, PassReport

__all__ = ["GraphPass", "GraphResult", "PassReport"]
