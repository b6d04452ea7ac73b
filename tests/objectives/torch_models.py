"""Weight-dominated torch models for the size and memory objective tests (importable, so a
fresh process can unpickle them)."""

from __future__ import annotations

import torch
from torch import nn


class LinearStack(nn.Module):
    """``layers`` Linear(width, width) with ReLU: weights dominate every other cost."""

    def __init__(self, layers: int, width: int = 512) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(*[m for _ in range(layers)
                                    for m in (nn.Linear(width, width), nn.ReLU())])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def batches(width: int = 512, count: int = 3, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(size, width, generator=generator), torch.zeros(size, dtype=torch.long))
            for _ in range(count)]
