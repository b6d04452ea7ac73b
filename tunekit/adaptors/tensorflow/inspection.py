"""Per-op outputs of a TFLite candidate next to its float reference (for MSE op ranking).

Both flatbuffers come from one conversion (the candidate is quantized from the reference), so an
op's output tensor has the same name in both; int8 tensors are dequantized with their own scale
and zero point, so both sides come back as float32 arrays of the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tunekit.adaptors.tensorflow import graph, source
from tunekit.adaptors.tensorflow.runtime import TFLiteModel
from tunekit.space import OpKey


def compare(candidate: TFLiteModel, ops: Sequence[OpKey], inputs: Sequence[Any],
            known: Sequence[graph.TFLiteOp] | None = None
            ) -> Mapping[OpKey, tuple[np.ndarray, np.ndarray]]:
    """(reference output, candidate output) per op over ``inputs``; unknown ops are left out.
    ``known`` are the ops already found in the candidate's reference flatbuffer (named with the
    Keras model at hand); without them they are found again from the config's names."""
    reference = TFLiteModel(candidate.reference, candidate.config, candidate.input_names,
                            order=candidate.order, threads=candidate.threads)
    if known is None:
        known = graph.find_ops(graph.read(candidate.reference), _layers_of(candidate))
    by_key = {op.key: op.output for op in known}
    names = {key: by_key[key] for key in ops if key in by_key}
    expected = _capture(reference, names, inputs)
    got = _capture(candidate, names, inputs)
    return {key: (expected[key], got[key]) for key in names if key in expected and key in got}


def _layers_of(candidate: TFLiteModel) -> dict[str, str] | None:
    """Keras layer names as the config knows them (op names without a ``#n`` suffix)."""
    names = {op.name.split("#")[0]: op.type for op in candidate.config.ops}
    return names or None


def _capture(model: TFLiteModel, names: Mapping[OpKey, str],
             inputs: Sequence[Any]) -> dict[OpKey, np.ndarray]:
    chunks: dict[OpKey, list[np.ndarray]] = {key: [] for key in names}
    for batch in inputs:
        _, interpreter = model.run(source.feed(batch, model.input_names), preserve=True)
        index = {d["name"]: d for d in interpreter.get_tensor_details()}
        for key, name in names.items():
            detail = index.get(name)
            if detail is not None:
                chunks[key].append(_dequantized(interpreter, detail))
    return {key: np.concatenate(c) for key, c in chunks.items() if c}


def _dequantized(interpreter: Any, detail: dict[str, Any]) -> np.ndarray:
    value = np.asarray(interpreter.get_tensor(detail["index"]))
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if value.dtype in (np.int8, np.uint8, np.int16) and scale:
        return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return value.astype(np.float32)
