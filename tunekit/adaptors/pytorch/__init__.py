"""PyTorch adaptor: int8 (torch.ao FX graph mode, eager fallback), bf16 and fp32 per op.

Importing this package imports torch; the core imports it only when a config names ``pytorch``.
"""

from __future__ import annotations

from tunekit.adaptors.pytorch.adaptor import PyTorchAdaptor

__all__ = ["PyTorchAdaptor"]
