"""The digits fallback case with a deliberately slow evaluation: a stand-in for a real model whose
trials take minutes, so trial time dominates the tuning (the distributed benchmark and tests).

Model, calibration and evaluation data are those of ``examples/digits_pytorch/fallback.yaml``;
each evaluation batch waits ``TUNEKIT_SLOW_EVAL_S`` seconds (default 0.25; 10 batches ≈ 2.5 s a
trial) before it is handed out. A sleep, not extra compute: two workers on a busy two-core
machine then measure the coordination, not the core count.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_pytorch"
sys.path.insert(0, str(EXAMPLE))

from data import calib_loader_half, eval_loader
from model import load_model


class SlowLoader:
    """``loader``'s batches, each after ``delay_s`` seconds."""

    def __init__(self, loader: Iterable[Any], delay_s: float) -> None:
        self.loader, self.delay_s = loader, delay_s

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            time.sleep(self.delay_s)
            yield batch

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


def slow_eval_loader() -> SlowLoader:
    return SlowLoader(eval_loader(), float(os.environ.get("TUNEKIT_SLOW_EVAL_S", "0.25")))


__all__ = ["calib_loader_half", "load_model", "slow_eval_loader"]
