"""bf16/fp32 tuning of a graph-optimized model through the ordinary tuner.

The accuracy-driven fallback of auto mixed precision is quantization tuning restricted to two
precisions, so no second tuning loop exists: :class:`AMPAdaptor` is the PyTorch adaptor with a
tuning space of bf16/fp32 per Conv/Linear and candidates built by :func:`~tunekit.adaptors.pytorch.graph_optimization.
amp.mixed_precision` (region casts) instead of per-op wrappers, then the bf16 pipeline's
selected lowering passes (``channels_last``). The tuner and the criterion are the ones
``tunekit tune`` uses; the strategy defaults to ``amp`` (op-type-wise, then op-wise fallback).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import fx

from tunekit.adaptor import Batch
from tunekit.adaptors.pytorch.adaptor import PyTorchAdaptor
from tunekit.adaptors.pytorch.capabilities import bf16_supported
from tunekit.errors import NotSupportedError
from tunekit.graph.pipeline import GraphPass
from tunekit.adaptors.pytorch.graph_optimization.amp import bf16_candidates, mixed_precision
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace


class AMPAdaptor(PyTorchAdaptor):
    """bf16 or fp32 per Conv/Linear of a ``torch.fx.GraphModule``; ``example_inputs`` are the
    positional inputs of one batch (they tell the cast insertion each tensor's dtype), ``after``
    the passes every candidate gets once converted (those ``graph_optimization.passes``
    leaves on)."""

    def __init__(self, *, example_inputs: Sequence[Any], after: Sequence[GraphPass] = ()) -> None:
        super().__init__(backend="eager")
        self.example_inputs = tuple(example_inputs)
        self.after = tuple(after)

    def capabilities(self, model: Any, approach: str = "static") -> TuningSpace:
        """Every Conv/Linear with (bf16, fp32); ``approach`` does not apply to float types."""
        if not bf16_supported():
            raise NotSupportedError("this CPU has no native bf16 (avx512_bf16/AMX): bf16 would "
                                    "be emulated and slower than fp32; use precisions: [fp32]")
        modules = dict(model.named_modules())
        return TuningSpace({OpKey(name, type(modules[name]).__name__):
                            (OpConfig("bf16"), OpConfig("fp32"))
                            for name in bf16_candidates(model)})

    def quantize(self, model: Any, config: QuantConfig, calib_data: Iterable[Batch]) -> Any:
        return self.build(model, [op.name for op in config.ops_in("bf16")])

    def build(self, graph: fx.GraphModule, bf16_ops: Sequence[str]) -> fx.GraphModule:
        """The mixed-precision model: region casts, then the ``after`` passes."""
        mixed = mixed_precision(graph, bf16_ops, self.example_inputs)
        for graph_pass in self.after:
            mixed = graph_pass.run(mixed)
        return mixed

    def save(self, candidate: Any, config: QuantConfig, path: Path) -> None:
        """The candidate's tensors only (``torch.save`` of a state_dict: safe to load)."""
        torch.save(candidate.state_dict(), Path(path))

    def load(self, model: Any, config: QuantConfig, path: Path) -> Any:
        candidate = self.quantize(model, config, [])
        candidate.load_state_dict(torch.load(Path(path), weights_only=True))
        return candidate

