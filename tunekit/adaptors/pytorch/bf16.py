"""bf16 per op: the op's module stored in bf16, with float32 at its borders.

Casting per op (rather than ``torch.autocast`` around the model) keeps the precision decision
where the tuning space puts it: exactly the chosen ops run in bf16, every other op sees the
float32 tensors it would see in the FP32 model. Weights are converted once, so a bf16 op also
halves its share of the saved state_dict.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from tunekit.adaptors.pytorch.runtime import replace_module


def _cast(value: Any, source: torch.dtype, target: torch.dtype) -> Any:
    """Cast every ``source``-typed tensor in a (nested) tuple/list/dict to ``target``."""
    if isinstance(value, torch.Tensor):
        return value.to(target) if value.dtype == source else value
    if isinstance(value, tuple):
        return tuple(_cast(v, source, target) for v in value)
    if isinstance(value, list):
        return [_cast(v, source, target) for v in value]
    if isinstance(value, dict):
        return {k: _cast(v, source, target) for k, v in value.items()}
    return value


class BF16Module(nn.Module):
    """Runs ``module`` in bf16: float32 inputs cast in, bf16 outputs cast back to float32.

    Nested inputs/outputs (an LSTM's ``(x, (h, c))``) are cast element by element; integer
    tensors pass through untouched.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.to(torch.bfloat16)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        args = _cast(args, torch.float32, torch.bfloat16)
        kwargs = _cast(kwargs, torch.float32, torch.bfloat16)
        return _cast(self.module(*args, **kwargs), torch.bfloat16, torch.float32)


def wrap_bf16(model: nn.Module, names: Iterable[str]) -> None:
    """Replace each named submodule of ``model`` (in place) by its :class:`BF16Module`."""
    for name in names:
        module = model.get_submodule(name)
        if not isinstance(module, BF16Module):
            replace_module(model, name, BF16Module(module))
