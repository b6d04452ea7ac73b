"""Hutchinson estimates of per-op Hessian traces (for the hawq strategy).

``tr(H) = E[vᵀHv]`` for random vectors ``v`` of ±1 entries; ``Hv`` is one extra backward pass
through the gradient (double backprop), so the trace of every op's weight block costs a few
forward/backward passes over a few batches, never the Hessian itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from tunekit.adaptors.pytorch.runtime import call_model, first_tensor
from tunekit.data import split_batch
from tunekit.space import OpKey

#: Random probe vectors per batch: the estimate's variance falls as 1/samples.
SAMPLES = 4


def hessian_traces(model: nn.Module, ops: Sequence[OpKey], batches: Iterable[Any],
                   loss: Callable[[Any, Any], torch.Tensor] | None = None,
                   seed: int = 0) -> Mapping[OpKey, float]:
    """Per op with a ``weight`` parameter, the mean over batches and probes of ``vᵀHv`` divided
    by the weight count. The model is left in its mode and its gradients untouched."""
    loss = loss or nn.functional.cross_entropy
    weights = {op: p for op in ops
               if isinstance(p := getattr(model.get_submodule(op.name), "weight", None),
                             nn.Parameter)}
    params = list(weights.values())
    generator = torch.Generator().manual_seed(seed)
    totals = dict.fromkeys(weights, 0.0)
    count, was_training = 0, model.training
    model.eval()
    try:
        for batch in batches:
            inputs, labels = split_batch(batch)
            value = loss(first_tensor(call_model(model, inputs)), torch.as_tensor(labels))
            grads = torch.autograd.grad(value, params, create_graph=True)
            for _ in range(SAMPLES):
                probes = [torch.randint(0, 2, p.shape, generator=generator).to(p.dtype) * 2 - 1
                          for p in params]
                products = torch.autograd.grad(grads, params, grad_outputs=probes,
                                               retain_graph=True)
                for op, v, hv in zip(weights, probes, products):
                    totals[op] += float((v * hv).sum()) / v.numel()
                count += 1
    finally:
        model.train(was_training)
    return {op: total / max(count, 1) for op, total in totals.items()}


__all__ = ["SAMPLES", "hessian_traces"]
