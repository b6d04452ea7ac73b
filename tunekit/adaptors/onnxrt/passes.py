"""ONNX Runtime's graph optimization levels as tunekit graph passes (``tunekit optimize``).

ONNX Runtime optimizes a graph when a session loads it, and writes the result when
``SessionOptions.optimized_model_filepath`` is set. Each level is one pass, registered as
``onnxrt.basic`` (constant folding, redundant node removal, BatchNorm/Conv fusions),
``onnxrt.extended`` (GELU, LayerNorm, attention and MatMul+Add fusions, contrib ops) and
``onnxrt.all`` (layout rewrites such as NCHWc for this machine's CPU: the saved model is meant
for machines like this one). Levels include the ones below, so the default pipeline runs them in
order and the report shows what each added.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import onnx
import onnxruntime as ort

from tunekit.adaptors.onnxrt.runtime import LEVELS, OrtModel, Settings
from tunekit.errors import ConfigError
from tunekit.graph.graph_result import GraphResult
from tunekit.graph.pipeline import GraphPass, run_passes, select
from tunekit.graph.registry import available


class OrtLevel(GraphPass):
    """One ONNX Runtime optimization level: the model as ONNX Runtime rewrites it on loading."""

    framework: ClassVar[str] = "onnxrt"
    precisions: ClassVar[frozenset[str]] = frozenset({"fp32"})
    level: ClassVar[str] = ""

    def run(self, graph: onnx.ModelProto) -> onnx.ModelProto:
        with tempfile.TemporaryDirectory(prefix="tunekit-onnxrt-") as folder:
            target = Path(folder, "optimized.onnx")
            options = ort.SessionOptions()
            options.graph_optimization_level = LEVELS[self.level]
            options.optimized_model_filepath = str(target)
            options.log_severity_level = 3
            ort.InferenceSession(graph.SerializeToString(), options,
                                 providers=["CPUExecutionProvider"])
            return onnx.load(str(target))


class Basic(OrtLevel):
    name = "basic"
    level = "basic"
    order = 10


class Extended(OrtLevel):
    name = "extended"
    level = "extended"
    order = 20


class All(OrtLevel):
    name = "all"
    level = "all"
    order = 30


def optimize(proto: onnx.ModelProto, settings: Settings, precisions: Sequence[str],
             passes: Any) -> GraphResult:
    """The ``onnxrt.*`` passes ``passes`` selects, run in order on ``proto`` (FP32 only)."""
    if "bf16" in precisions:
        raise ConfigError("graph_optimization.precisions",
                          "the onnxrt adaptor optimizes FP32 graphs only; use precisions: [fp32]")
    graph, reports = run_passes(proto, select(available("onnxrt"), passes),
                                lambda model: len(model.graph.node))
    return GraphResult(OrtModel(graph, settings), "onnxrt", tuple(precisions), reports)
