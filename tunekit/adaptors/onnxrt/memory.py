"""Peak resident memory of an ONNX model's inference, measured in a fresh process.

As for PyTorch: the tuning process's high-water mark only grows, so the child loads the inputs,
resets its mark (``/proc/self/clear_refs``), notes its RSS, creates the session (weights and
ONNX Runtime's prepacked buffers), and runs every batch; the figure is ``VmHWM`` minus the RSS
before the session. Linux only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunekit.adaptors.onnxrt.runtime import OrtModel, feeds
from tunekit.errors import NotSupportedError, TrialError

_CHILD = r"""
import json, sys
import numpy as np
import onnxruntime as ort

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

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
print(json.dumps({"peak": status("VmHWM") - before}))
"""


def peak_memory(model: OrtModel, inputs: Sequence[Any], threads: int | None,
                timeout: float = 300.0) -> int:
    """Peak resident bytes of ``model`` running ``inputs`` (see the module docstring)."""
    if not Path("/proc/self/clear_refs").exists():
        raise NotSupportedError("measuring peak memory needs Linux's /proc/self/clear_refs")
    session = model.session()
    arrays = {f"{i}:{name}": value for i, batch in enumerate(inputs)
              for name, value in feeds(session, batch).items()}
    level = int(model.settings.session_options().graph_optimization_level)
    with tempfile.TemporaryDirectory(prefix="tunekit-memory-") as folder:
        model_file, inputs_file = Path(folder, "model.onnx"), Path(folder, "inputs.npz")
        model.save(model_file)
        np.savez(inputs_file, **arrays)
        command = [sys.executable, "-c", _CHILD, str(model_file), str(inputs_file), str(level),
                   str(threads or model.settings.intra_op_threads or 0)]
        run = subprocess.run(command, check=False, capture_output=True, text=True,
                             timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if run.returncode != 0:
        last = run.stderr.strip().splitlines()[-1:] or [f"exit status {run.returncode}"]
        raise TrialError(f"measuring memory in a fresh process failed: {last[0]}")
    return int(json.loads(run.stdout.strip().splitlines()[-1])["peak"])
