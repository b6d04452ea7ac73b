"""The benchmark's result: FP32 and tuned model side by side, with ratios, as a table and JSON.

Within one run, with several instances, latency figures are the median over instances (each
instance's own median and 90th percentile), and throughput is the sum: the instances ran at the
same time, so together they served that many samples per second. Over several runs (each in
fresh processes), every figure is the median of the runs' figures, and the latency ratio also
shows its range over the runs: the spread from one process to the next, which on a small VM is
the largest source of noise (docs/qat.md).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunekit.benchmark.load import QUIET
from tunekit.config import BenchmarkSpec
from tunekit.speed import NOISY
from tunekit.timing import spread

if TYPE_CHECKING:
    from tunekit.benchmark.measure import Figures

COLUMNS = ("batch", "FP32 median ms", "FP32 p90 ms", "FP32 /s", "tuned median ms",
           "tuned p90 ms", "tuned /s", "speedup")


@dataclass
class Report:
    bench: BenchmarkSpec
    model_path: Path
    runs: list[list[list[Figures]]]  # per run (fresh processes), per instance, its figures
    cores: list[list[int]]

    def combined(self, model: str, batch_size: int) -> dict[str, Any]:
        """One model at one batch size over all instances and runs (see the module docstring)."""
        per_run = [_one_run(instances, model, batch_size) for instances in self.runs]
        return {"median_ms": statistics.median(r["median_ms"] for r in per_run),
                "p90_ms": statistics.median(r["p90_ms"] for r in per_run),
                "throughput": statistics.median(r["throughput"] for r in per_run),
                "threads": per_run[0]["threads"], "calls": sum(r["calls"] for r in per_run),
                "rounds_kept": min(r["rounds_kept"] for r in per_run),
                "foreign_cpu": _median_known([r["foreign_cpu"] for r in per_run]),
                "per_run_median_ms": [r["median_ms"] for r in per_run]}

    def rows(self) -> list[dict[str, Any]]:
        """Per batch size: both models' figures and one speedup (FP32 median / tuned median
        latency), with its range over runs and its spread over the interleaved rounds."""
        rows = []
        assert self.bench.batch_sizes is not None
        for batch_size in self.bench.batch_sizes:
            fp32, tuned = self.combined("fp32", batch_size), self.combined("tuned", batch_size)
            ratios = [_ratio(f, t) for f, t in zip(fp32["per_run_median_ms"],
                                                   tuned["per_run_median_ms"])]
            rows.append({"batch_size": batch_size, "fp32": fp32, "tuned": tuned,
                         "speedup": statistics.median(ratios),  # of the runs' own ratios
                         "speedup_range": [min(ratios), max(ratios)],
                         "spread": spread(self._round_ratios(batch_size))})
        return rows

    def _round_ratios(self, batch_size: int) -> list[float]:
        """FP32 / tuned latency of every kept round of every instance and run."""
        ratios = []
        for instances in self.runs:
            for figures in instances:
                mine = {f.model: f.round_medians_s for f in figures
                        if f.batch_size == batch_size}
                ratios += [_ratio(f, t) for f, t in zip(mine.get("fp32", ()),
                                                        mine.get("tuned", ()))]
        return ratios

    def runtimes(self) -> str | None:
        """``tuned in TFLite, FP32 in TensorFlow (Keras)`` when the two ran in different
        runtimes (part of the speedup is then the runtime's), else None."""
        found = {f.model: f.runtime for instances in self.runs for figures in instances
                 for f in figures}
        tuned, fp32 = found.get("tuned"), found.get("fp32")
        return f"tuned in {tuned}, FP32 in {fp32}" if tuned and fp32 and tuned != fp32 else None

    def to_dict(self) -> dict[str, Any]:
        bench = self.bench
        return {"model": str(self.model_path), "instances": bench.instances, "cores": self.cores,
                "threads_per_instance": self.rows()[0]["fp32"]["threads"],
                "warmup": bench.warmup, "iterations": bench.iterations, "rounds": bench.rounds,
                "processes": len(self.runs), "runtimes": self.runtimes(),
                "results": self.rows(),
                "per_run": [[[f.to_dict() for f in figures] for figures in instances]
                            for instances in self.runs]}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def table(self) -> str:
        body = []
        for row in self.rows():
            fp32, tuned = row["fp32"], row["tuned"]
            body.append([str(row["batch_size"]), f"{fp32['median_ms']:.3f}",
                         f"{fp32['p90_ms']:.3f}", f"{fp32['throughput']:.0f}",
                         f"{tuned['median_ms']:.3f}", f"{tuned['p90_ms']:.3f}",
                         f"{tuned['throughput']:.0f}", _speedup_cell(row)])
        widths = [max(len(c) for c in column) for column in zip(COLUMNS, *body)]
        lines = [" │ ".join(c.rjust(w) for c, w in zip(cells, widths))
                 for cells in [list(COLUMNS), *body]]
        threads = self.rows()[0]["fp32"]["threads"]
        cores = ", ".join("{" + ",".join(map(str, c)) + "}" for c in self.cores)
        runs = f"{len(self.runs)} runs in fresh processes × " if len(self.runs) > 1 else ""
        lines.append(f"{runs}{self.bench.instances} instance(s) on cores {cores}, "
                     f"{threads if threads is not None else '?'} thread(s) each; "
                     f"{self.bench.rounds} rounds × {self.bench.iterations} calls per model "
                     f"after {self.bench.warmup} warm-up calls; speedup = FP32 / tuned "
                     "median latency" + (" (range over the runs)" if len(self.runs) > 1
                                         else "") + f", ±spread over rounds (noisy above "
                     f"{NOISY:.0%})")
        if self.runtimes():
            lines.append(f"runtimes: {self.runtimes()}: part of the speedup is the runtime's")
        lines.append(self._load_line())
        return "\n".join(lines)

    def _load_line(self) -> str:
        """How busy the machine was, and what that did to the figures."""
        if self.bench.instances > 1:
            return ("every round kept: the instances load each other's cores by design, so "
                    "foreign load is not filtered")
        kept = min(row[m]["rounds_kept"] for row in self.rows() for m in ("fp32", "tuned"))
        load = _median_known([row["fp32"]["foreign_cpu"] for row in self.rows()])
        if load is None:
            return f"{kept} of {self.bench.rounds} rounds kept (machine load unknown)"
        return (f"{kept} of {self.bench.rounds} rounds kept per batch size; other processes "
                f"used {load:.0%} of the CPU in a median round (rounds above {QUIET:.0%} are "
                "dropped while at least 2 quiet ones remain)")


def _one_run(instances: list[list[Figures]], model: str, batch_size: int) -> dict[str, Any]:
    """One model at one batch size in one run: median latency over instances, summed
    throughput (the instances ran at the same time)."""
    mine = [f for figures in instances for f in figures
            if f.model == model and f.batch_size == batch_size]
    return {"median_ms": statistics.median(f.median_s for f in mine) * 1e3,
            "p90_ms": statistics.median(f.p90_s for f in mine) * 1e3,
            "throughput": sum(f.throughput for f in mine),
            "threads": mine[0].threads, "calls": sum(f.calls for f in mine),
            "rounds_kept": min(f.rounds_kept for f in mine),
            "foreign_cpu": _median_known([f.foreign_cpu for f in mine])}


def _speedup_cell(row: dict[str, Any]) -> str:
    low, high = row["speedup_range"]
    between = f" ({low:.2f}–{high:.2f})" if high > low else ""
    noise = f" ±{row['spread']:.0%}" + (" noisy" if row["spread"] > NOISY else "")
    return f"{row['speedup']:.2f}×{between}{noise}"


def _median_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0
