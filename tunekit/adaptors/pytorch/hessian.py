"""Hutchinson estimates of per-op Hessian traces (for the hawq strategy).

``tr(H) = E[vᵀHv]`` for random vectors ``v`` of ±1 entries; ``Hv`` is one extra backward pass
through the gradient (double backprop), so the trace of every op's weight block costs a few
forward/backward passes over a few batches, never the Hessian itself.

Unlabelled batches (an inputs-only calibration loader) have no labels to take a loss against;
the loss is then the mean squared difference between the model's outputs and the FP32 outputs
themselves (detached). Its gradient vanishes at the FP32 weights but its Hessian is the
Gauss-Newton matrix ``2 JᵀJ / n`` (how strongly each weight moves the outputs), which ranks ops
by sensitivity as the labelled loss does.
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
            outputs = first_tensor(call_model(model, inputs)).float()
            value = self_distillation(outputs) if labels is None else \
                loss(outputs, torch.as_tensor(labels))
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


def self_distillation(outputs: torch.Tensor) -> torch.Tensor:
    """The loss of unlabelled batches: MSE between the outputs and their own detached values
    (see the module docstring)."""
    return nn.functional.mse_loss(outputs, outputs.detach())


__all__ = ["SAMPLES", "hessian_traces", "self_distillation"]
