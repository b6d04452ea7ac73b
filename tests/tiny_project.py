"""A tiny but real tuning project on disk (torch model, data, YAML) for the reliability tests.

Calibration sees inputs at a fifth of the evaluation's intensity, so int8 clips activations and
loses accuracy: the basic strategy has to work through several trials before it meets the goal
(or spends its budget), which gives the kill/resume tests something to interrupt. Labels are the
FP32 model's own predictions, so the baseline top-1 is 1.0.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

MODEL = """
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.relu2 = torch.nn.ReLU()
        self.flatten = torch.nn.Flatten()
        self.fc = torch.nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(self.flatten(self.relu2(self.conv2(self.relu1(self.conv1(x))))))

def build():
    torch.manual_seed(0)
    return Net().eval()
"""

DATA = """
import torch

def _batches(seed, n, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    from model import build
    net = build()
    out = []
    for _ in range(n):
        x = torch.rand(16, 1, 8, 8, generator=g) * 4
        with torch.no_grad():
            y = net(x).argmax(1)
        out.append((x * scale, y))
    return out

def calib():
    return _batches(1, 2, scale=0.2)

def evaluate_loader():
    return _batches(2, 4)
"""

CONFIG = """
model: {framework: pytorch, factory: model:build}
quantization:
  calibration: {data: data:calib}
evaluation:
  data: data:evaluate_loader
  metric: {name: topk}
tuning:
  strategy: basic
  accuracy_criterion: {absolute: 0.0}
  objective: size
  exit_policy: {timeout: 0, max_trials: 8}
  random_seed: 7
"""


def write_project(root: Path, config: str = CONFIG, **files: str) -> Path:
    """Write model.py, data.py, config.yaml (and any ``name=source`` extra files) to ``root``;
    returns the config path."""
    root.mkdir(parents=True, exist_ok=True)
    sources = {"model.py": MODEL, "data.py": DATA, "config.yaml": config,
               **{name.replace("__", "."): text for name, text in files.items()}}
    for name, text in sources.items():
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "config.yaml"
