"""Per-op outputs of a model, captured with forward hooks (for MSE-based op ranking).

Hooks sit on the module at each op's name. In an FX candidate that module is the fused int8 op
(conv+BN+ReLU), so the FP32 side must be the fused FP32 graph for the two outputs to mean the
same thing; an eager candidate wraps the op in place, and its FP32 side is the model itself.
Quantized outputs are dequantized and bf16 ones widened, so both sides come back as float32.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from tunekit.adaptors.pytorch.runtime import call_model, first_tensor, to_float_numpy
from tunekit.data import split_batch


def _join(chunks: list[np.ndarray]) -> np.ndarray:
    """One array per op: calls stacked on the first axis, or flattened if their shapes differ."""
    if len(chunks) == 1:
        return chunks[0]
    try:
        return np.concatenate(chunks, axis=0)
    except ValueError:
        return np.concatenate([c.reshape(-1) for c in chunks])


def capture(model: nn.Module, names: Sequence[str],
            batches: Iterable[Any]) -> dict[str, np.ndarray]:
    """Outputs of the named submodules over ``batches``; ops that never ran are left out.

    A module called several times per batch (a shared block) contributes every call, in order,
    so two models with the same structure still line up.
    """
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in names}
    handles = []

    def hook_for(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            outputs[name].append(to_float_numpy(first_tensor(output)))
        return hook

    try:
        for name in names:
            handles.append(model.get_submodule(name).register_forward_hook(hook_for(name)))
        with torch.inference_mode():
            for batch in batches:
                call_model(model, split_batch(batch)[0])
    finally:
        for handle in handles:
            handle.remove()
    return {name: _join(chunks) for name, chunks in outputs.items() if chunks}
