"""The auto-mixed-precision cases of ``benchmarks/amp_vs_inc.py``, shared by both tools' runs.

Importable by tunekit's environment and by the INC peer's (torch and numpy only, plus
:mod:`refmodels`), so both tools tune the same weights against the same metric and time their
results with the same loop (:func:`timing.interleaved`):

- ``resnet_digits``: the trained ResNet-like CNN of :mod:`resnet_digits` (convolutions carry
  the time); metric top-1 on its 597 held-out images, batch 32 timed;
- ``bert_like``: :func:`refmodels.build_r3` (4 encoder layers, hidden 256, seq 128, random init;
  Linear layers carry the time); metric the mean cosine similarity of its logits to FP32's on 32 fixed
  random sequences, batch 8 timed.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


@dataclass(frozen=True)
class Case:
    """One workload: its FP32 model, metric (higher is better), timed batch and goal."""

    model: Callable[[], nn.Module]
    metric: Callable[[nn.Module], float]
    batch: Callable[[], torch.Tensor]
    #: the accuracy goal, as ``(criterion, tolerable loss)`` (INC's and tunekit's wording)
    goal: tuple[str, float]


def _resnet() -> nn.Module:
    import resnet_digits

    return resnet_digits.load_model()


def _resnet_top1(model: nn.Module) -> float:
    import resnet_digits

    return resnet_digits.top1(model)


def _resnet_batch() -> torch.Tensor:
    import resnet_digits

    return torch.from_numpy(resnet_digits.digits32()["x_eval"][:32])


def _bert() -> nn.Module:
    import refmodels

    return refmodels.build_r3()


@functools.lru_cache(maxsize=1)
def _bert_reference() -> tuple[torch.Tensor, torch.Tensor]:
    import refmodels

    ids = refmodels.r3_input(32, seed=1)
    with torch.inference_mode():
        return ids, _bert()(ids).float()


def _bert_fidelity(model: nn.Module) -> float:
    ids, reference = _bert_reference()
    with torch.inference_mode():
        out = torch.cat([model(ids[i:i + 8]).float() for i in range(0, len(ids), 8)])
    return float(nn.functional.cosine_similarity(out, reference, dim=1).mean())


def _bert_batch() -> torch.Tensor:
    import refmodels

    return refmodels.r3_input(8)


CASES = {
    "resnet_digits": Case(_resnet, _resnet_top1, _resnet_batch, ("relative", 0.01)),
    "bert_like": Case(_bert, _bert_fidelity, _bert_batch, ("absolute", 0.01)),
}
