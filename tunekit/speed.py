"""One speed figure everywhere: ``speedup = FP32 time / model time`` (above 1: faster).

The console's trial lines, ``report.md``, ``result.json`` and ``tunekit benchmark`` all show it
the same way, with what it is made of: the batch size and both times in milliseconds, and the
spread of the ratio over the interleaved rounds it was timed in (see
:meth:`tunekit.objectives.performance.Performance.measure_beside`). A spread above
:data:`NOISY` is flagged: the machine's load moved the figure more than the figure can be
trusted to say; so is a machine that other processes kept busy (:data:`BUSY`) while timing,
which can leave the ratio steady and still distort it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunekit.adaptor import Adaptor
    from tunekit.objective import Objective

#: a ratio whose spread (half the interquartile range over rounds, relative) is above this is
#: flagged "noisy"
NOISY = 0.10
#: other processes using more than this share of the CPU while timing flag the figure "busy"
BUSY = 0.25


@dataclass(frozen=True)
class Speed:
    """A model timed beside FP32 on the same batches."""

    model_ms: float
    fp32_ms: float
    batch_size: int | None = None
    spread: float | None = None
    #: the runtimes each side ran in, when they differ (``TFLite vs FP32 in TensorFlow``)
    runtimes: str | None = None
    #: the share of the CPU other processes used while timing (None: unknown)
    foreign_cpu: float | None = None

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.model_ms if self.model_ms > 0 else 0.0

    @property
    def noisy(self) -> bool:
        return self.spread is not None and self.spread > NOISY

    @property
    def busy(self) -> bool:
        return self.foreign_cpu is not None and self.foreign_cpu > BUSY

    def cell(self) -> str:
        """``3.58×`` (``3.58× ±23% noisy``, ``3.58× busy`` when disturbed): for tables."""
        return f"{self.speedup:.2f}×" + (f" ±{self.spread:.0%} noisy" if self.noisy else "") \
            + (" busy" if self.busy else "")

    def text(self) -> str:
        """``3.58× faster than FP32 (0.950 vs 3.400 ms, batch 32, ±4%)``: for a line."""
        verdict = "faster than" if self.speedup >= 1 else "the speed of (slower than)"
        parts = [f"{self.model_ms:.3f} vs {self.fp32_ms:.3f} ms"]
        if self.batch_size:
            parts.append(f"batch {self.batch_size}")
        if self.spread is not None:
            parts.append(f"±{self.spread:.0%}" + (", noisy" if self.noisy else ""))
        if self.busy:
            parts.append(f"busy machine: other processes used {self.foreign_cpu:.0%} of the CPU")
        if self.runtimes:
            parts.append(self.runtimes)
        return f"{self.speedup:.2f}× {verdict} FP32 ({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        return {"speedup": round(self.speedup, 4), "model_ms": round(self.model_ms, 4),
                "fp32_ms": round(self.fp32_ms, 4), "batch_size": self.batch_size,
                "spread": None if self.spread is None else round(self.spread, 4),
                "noisy": self.noisy, "runtimes": self.runtimes,
                "foreign_cpu": None if self.foreign_cpu is None else round(self.foreign_cpu, 3),
                "busy": self.busy}


def from_details(details: Mapping[str, float], name: str,
                 runtimes: str | None = None) -> Speed | None:
    """The speed of a trial from its details: objective ``name`` (seconds) and the FP32 figure
    timed beside it (``<name>.fp32``); None when the trial has no such pair."""
    value, fp32 = details.get(name), details.get(f"{name}.fp32")
    if not value or not fp32:
        return None
    batch = details.get(f"{name}.batch_size")
    return Speed(value * 1e3, fp32 * 1e3, int(batch) if batch else None,
                 details.get(f"{name}.spread"), runtimes, details.get(f"{name}.foreign_cpu"))


def runtimes(adaptor: Adaptor, model: Any, fp32: Any) -> str | None:
    """``TFLite vs FP32 in TensorFlow (Keras)`` when ``model`` and its FP32 ``fp32`` run in
    different runtimes (part of such a speedup is the runtime's, not the precision's), else
    None."""
    mine, theirs = adaptor.runtime(model), adaptor.runtime(fp32)
    return f"{mine} vs FP32 in {theirs}" if mine and theirs and mine != theirs else None


def format_objective(name: str, objective: Objective, value: float, baseline: float,
                     details: Mapping[str, float] | None = None,
                     runtime_label: str | None = None) -> str:
    """``performance 3.58× faster than FP32 (0.950 vs 3.400 ms, batch 32, ±4%)`` for a
    latency timed beside FP32 (see :mod:`tunekit.speed`); else ``size 1.2e+05B (3.90× better
    than FP32)``: the value in its unit and the ratio to FP32."""
    speed = from_details(details or {}, name, runtime_label) if objective.unit == "s" else None
    if speed is not None:
        return f"{name} {speed.text()}"
    shown = f"{value * 1e3:.3f} ms" if objective.unit == "s" else f"{value:.4g}{objective.unit}"
    if value > 0 and baseline > 0:
        ratio = baseline / value if objective.direction == "minimize" else value / baseline
        shown += f" ({ratio:.2f}× better than FP32)" if ratio >= 1 else f" ({ratio:.2f}× FP32)"
    return f"{name} {shown}"


__all__ = ["NOISY", "Speed", "format_objective", "from_details", "runtimes"]
