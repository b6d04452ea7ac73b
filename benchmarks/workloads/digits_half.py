"""The digits example's fallback case as a workload module for ``inc_workload.py``: the example's
own model and data (``examples/digits_pytorch``, same cached weights as ``tunekit tune``
uses), calibrated on images at half intensity. Needs torch, numpy and scikit-learn only, so
the peer's environment imports it too."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_pytorch"
sys.path.insert(0, str(EXAMPLE))

from data import calib_loader_half as _calib_loader_half  # noqa: E402
from model import digits_data, load_model  # noqa: E402

__all__ = ["calib_loader_half", "load_model", "timed_batch", "top1"]


def calib_loader_half() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The example's 100 calibration images at half intensity, 10 per batch."""
    return list(_calib_loader_half())


def top1(model: nn.Module) -> float:
    """Top-1 on the example's 597 held-out images."""
    data = digits_data()
    with torch.inference_mode():
        out = model(torch.from_numpy(data.x_eval))
    return float((out.argmax(1) == torch.from_numpy(data.y_eval)).float().mean())


def timed_batch() -> torch.Tensor:
    """The batch both tools' models are timed on: 32 held-out images."""
    return torch.from_numpy(digits_data().x_eval[:32])
