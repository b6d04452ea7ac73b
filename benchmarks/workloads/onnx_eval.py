"""The validation function both tools get in ``benchmarks/vs_nncf.py`` (numpy and onnxruntime
only, so tunekit's process and the NNCF peer's import the same file).

Each case's data is an ``.npz`` file: ``x_calib``, ``x_eval`` and ``y_eval`` (plus ``mask_*`` for
the encoder). Evaluation runs in batches of ``EVAL_BATCH``; the score is top-1 accuracy, and the
per-batch accuracies are NNCF's per-item values (so it ranks without one call per sample).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

EVAL_BATCH = 64
#: Compute ops whose int8/float state the table reports.
COMPUTE = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def load_data(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def feeds(data: dict[str, np.ndarray], split: str, start: int, stop: int) -> dict[str, Any]:
    """The model inputs of samples ``start:stop`` of ``split`` (``calib`` or ``eval``)."""
    inputs = {"x": data[f"x_{split}"][start:stop]}
    if f"mask_{split}" in data:
        inputs["mask"] = data[f"mask_{split}"][start:stop]
    return inputs


def batches(data: dict[str, np.ndarray], split: str, size: int = EVAL_BATCH) -> list[dict]:
    count = len(data[f"x_{split}"])
    return [feeds(data, split, i, min(i + size, count)) for i in range(0, count, size)]


def session(model_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def accuracy(run: Any, data: dict[str, np.ndarray]) -> tuple[float, list[float]]:
    """Top-1 of ``run(feed) -> logits`` over the evaluation set, and per batch."""
    labels = data["y_eval"]
    per_batch, right = [], 0
    for i, feed in enumerate(batches(data, "eval")):
        hits = run(feed).argmax(-1) == labels[i * EVAL_BATCH: i * EVAL_BATCH + len(feed["x"])]
        per_batch.append(float(hits.mean()))
        right += int(hits.sum())
    return right / len(labels), per_batch


def float_compute_ops(model: Any) -> tuple[list[str], int]:
    """Compute ops (Conv/Gemm/MatMul) left in float — those whose data and weight inputs are not
    both dequantized int8 — and the count of compute ops in the model (int8 ones included:
    QLinearConv, ConvInteger ...)."""
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear"
                   for o in n.output}
    compute = [n for n in model.graph.node if n.op_type in COMPUTE]
    floats = [n.name for n in compute if not set(n.input[:2]) <= dequantized]
    int8 = [n for n in model.graph.node if n.op_type.startswith(("QLinear", "QGemm", "ConvInteger",
                                                                 "MatMulInteger"))]
    return floats, len(compute) + len(int8)
