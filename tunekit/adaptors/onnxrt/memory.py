"""Peak resident memory of an ONNX model's inference, measured in a fresh process.

As for PyTorch: the tuning process's high-water mark only grows, so the child loads the inputs,
resets its mark (``/proc/self/clear_refs``), notes its RSS, creates the session (weights and
ONNX Runtime's prepacked buffers), and runs every batch; the figure is ``VmHWM`` minus the RSS
before the session. Linux only (:mod:`tunekit.peak_rss`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunekit import peak_rss
from tunekit.adaptors.onnxrt.runtime import OrtModel, feeds

_CHILD = r"""
import sys

import numpy as np
import onnxruntime as ort
from tunekit.peak_rss import print_peak, reset_peak, status

archive = np.load(sys.argv[2])
batches = {}
for key in archive.files:
    index, name = key.split(":", 1)
    batches.setdefault(int(index), {})[name] = archive[key]
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel(int(sys.argv[3]))
if int(sys.argv[4]) > 0:
    options.intra_op_num_threads = int(sys.argv[4])
reset_peak()
before = status("VmRSS")
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
for index in sorted(batches):
    session.run(None, batches[index])
print_peak(before)
"""


def peak_memory(model: OrtModel, inputs: Sequence[Any], threads: int | None,
                timeout: float = 300.0) -> int:
    """Peak resident bytes of ``model`` running ``inputs`` (see the module docstring)."""
    peak_rss.check_supported()
    session = model.session()
    arrays = {f"{i}:{name}": value for i, batch in enumerate(inputs)
              for name, value in feeds(session, batch).items()}
    level = int(model.settings.session_options().graph_optimization_level)
    with tempfile.TemporaryDirectory(prefix="tunekit-memory-") as folder:
        model_file, inputs_file = Path(folder, "model.onnx"), Path(folder, "inputs.npz")
        model.save(model_file)
        np.savez(inputs_file, **arrays)
        return peak_rss.run_child(_CHILD, [str(model_file), str(inputs_file), str(level),
                                           str(threads or model.settings.intra_op_threads or 0)],
                                  timeout)
