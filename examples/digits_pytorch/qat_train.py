"""The example's training function for quantization-aware training.

tunekit calls ``train(model, epochs=..., lr=...)`` once per trial with that trial's
fake-quantized copy of the digits CNN (``quantization.training`` in ``config.yaml``). It is an
ordinary fine-tuning loop: the user's data, loss and optimizer. The budget is small on purpose:
the FP32 weights are already good, QAT only has to teach them the int8 grid and let the fake
quantizers learn the activation ranges from real training images.
"""

from __future__ import annotations

from torch import nn

from model import fit


def train(model: nn.Module, epochs: int = 1, lr: float = 1e-4, batch_size: int = 64) -> nn.Module:
    """Fine-tune the fake-quantized ``model`` with the example's own training loop."""
    return fit(model, epochs, batch_size, lr)
