"""bf16/fp32 tuning of a graph-optimized model through the ordinary tuner.

The accuracy-driven fallback of auto mixed precision is quantization tuning restricted to two
precisions, so no second tuning loop exists: :class:`AMPAdaptor` offers a tuning space of
bf16/fp32 per Conv/Linear and builds candidates by :func:`~tunekit.adaptors.pytorch.
graph_optimization.amp.mixed_precision` (region casts) instead of per-op wrappers, then the bf16
pipeline's selected lowering passes (``channels_last``). Running, timing and sizing a model is
the framework adaptor's business, so it wraps one (the adaptor whose ``optimize_graph`` runs)
rather than subclassing it: what it does not override is that adaptor's answer, and nothing of
its int8 machinery (calibration, backends, deployment) leaks into bf16 candidates. The tuner and
the criterion are the ones ``tunekit tune`` uses; the strategy defaults to ``amp``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.adaptors.pytorch.capabilities import bf16_supported
from tunekit.adaptors.pytorch.graph_optimization.amp import bf16_candidates, mixed_precision
from tunekit.errors import NotSupportedError
from tunekit.graph.pipeline import GraphPass
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace


class AMPAdaptor(Adaptor):
    """bf16 or fp32 per Conv/Linear of a ``torch.fx.GraphModule``.

    ``framework`` is the PyTorch adaptor that runs, times and sizes models; ``example_inputs``
    are the positional inputs of one batch (they tell the cast insertion each tensor's dtype),
    ``after`` the passes every candidate gets once converted (those
    ``graph_optimization.passes`` leaves on).
    """

    model_suffix = ".pt"

    def __init__(self, framework: Adaptor, *, example_inputs: Sequence[Any],
                 after: Sequence[GraphPass] = ()) -> None:
        self.framework = framework
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

    def quantize(self, model: Any, config: QuantConfig, calib_data: Iterable[DataBatch]) -> Any:
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

    # -- the framework adaptor's answers ---------------------------------------------------------
    def forward_signature(self, model: Any) -> inspect.Signature | None:
        return self.framework.forward_signature(model)

    def predict(self, model: Any, data: Iterable[DataBatch]) -> Iterator[tuple[np.ndarray, Any]]:
        return self.framework.predict(model, data)

    def run_batch(self, model: Any, inputs: Any) -> Any:
        return self.framework.run_batch(model, inputs)

    @contextlib.contextmanager
    def threads(self, count: int | None) -> Iterator[int | None]:
        with self.framework.threads(count) as used:
            yield used

    def peak_memory(self, model: Any, inputs: Sequence[Any]) -> int:
        return self.framework.peak_memory(model, inputs)

    def inspect(self, model: Any, candidate: Any, ops: Sequence[OpKey],
                data: Iterable[DataBatch]) -> Mapping[OpKey, tuple[np.ndarray, np.ndarray]]:
        return self.framework.inspect(model, candidate, ops, data)

    def hessian_trace(self, model: Any, ops: Sequence[OpKey], data: Iterable[DataBatch],
                      loss: Any = None) -> Mapping[OpKey, float]:
        return self.framework.hessian_trace(model, ops, data, loss)

    def model_size(self, model: Any) -> int:
        return self.framework.model_size(model)
