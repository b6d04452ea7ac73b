"""The example's training function for quantization-aware training.

tunekit calls ``train(model, epochs=..., lr=...)`` once per trial with that trial's
fake-quantized copy of the digits CNN (``quantization.training`` in ``config.yaml``). It is an
ordinary fine-tuning loop: the user's data, loss and optimizer. The budget is small on purpose:
the FP32 weights are already good, QAT only has to teach them the int8 grid and let the fake
quantizers learn the activation ranges from real training images.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from model import digits_data


def train(model: nn.Module, epochs: int = 1, lr: float = 1e-4, batch_size: int = 64) -> nn.Module:
    """Adam on cross-entropy over the 1,200 training images, a fixed shuffle (seed 0)."""
    data = digits_data()
    images, labels = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=shuffle)
        for start in range(0, len(labels), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    return model
