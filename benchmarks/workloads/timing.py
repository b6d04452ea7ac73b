"""One timing loop for every benchmark process, tunekit's and the peers' (torch only, plus
:mod:`refmodels` for its CPU-contention meter): both sides of a comparison time alike."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))


def interleaved(models: dict[str, nn.Module], batch: torch.Tensor, rounds: int = 7,
                calls: int = 8) -> dict[str, float]:
    """Median seconds per call of each model, timed in alternating rounds (after a warm-up);
    rounds during which other processes used more than 3% of the CPU are dropped unless fewer
    than two stay, then the two quietest are kept (:class:`refmodels.ContentionMeter`)."""
    import refmodels

    kept: list[tuple[float, dict[str, list[float]]]] = []
    with torch.inference_mode():
        for model in models.values():
            for _ in range(5):
                model(batch)
        for _ in range(rounds):
            meter, times = refmodels.ContentionMeter().start(), {name: [] for name in models}
            for name, model in models.items():
                for _ in range(calls):
                    start = time.perf_counter()
                    model(batch)
                    times[name].append(time.perf_counter() - start)
            kept.append((meter.stop()["foreign_cpu_frac"], times))
    quiet = [t for share, t in kept if share <= 0.03]
    use = quiet if len(quiet) >= 2 else [t for _, t in sorted(kept, key=lambda z: z[0])[:2]]
    return {name: statistics.median(v for t in use for v in t[name]) for name in models}
