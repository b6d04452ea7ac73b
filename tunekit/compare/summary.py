"""A comparison reduced to one row per strategy: medians over seeds.

"Trials to goal" counts evaluated configs up to and including the first accepted one (the FP32
baseline not included; add one to compare with Intel Neural Compressor's evaluation counts).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from tunekit.compare.run import Comparison, RunRecord


@dataclass(frozen=True)
class Summary:
    strategy: str
    seeds: int
    met: int  # seeds whose run met the goal
    trials_to_goal: float | None  # median over the seeds that met it
    time_to_goal_s: float | None
    trials: float  # median trials per run, goal or not
    best_objective: float | None  # median over seeds of the best objective among passing trials
    mix: str  # the best config's precision mix, most common over seeds
    errors: tuple[str, ...]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mix(run: RunRecord) -> str:
    best = run.best
    if best is None:
        return "—"
    counts = best.config.counts()
    return " ".join(f"{p}×{counts[p]}" for p in ("int8", "bf16", "fp32") if p in counts)


def summarize(comparison: Comparison) -> list[Summary]:
    """One :class:`Summary` per strategy, in the order they ran."""
    by_strategy: dict[str, list[RunRecord]] = {}
    for run in comparison.runs:
        by_strategy.setdefault(run.strategy, []).append(run)
    rows = []
    for name, runs in by_strategy.items():
        goals = [(run, goal) for run in runs if (goal := run.goal_trial) is not None]
        objectives = [o for run in runs
                      if (o := min((t.objective for t in run.trials
                                    if t.accepted and t.objective is not None),
                                   default=None)) is not None]
        mixes = Counter(_mix(run) for run in runs)
        rows.append(Summary(
            strategy=name, seeds=len(runs), met=len(goals),
            trials_to_goal=_median([goal.number + 1 for _, goal in goals]),
            time_to_goal_s=_median([goal.elapsed_s for _, goal in goals]),
            trials=statistics.median(len(run.trials) for run in runs),
            best_objective=_median(objectives), mix=mixes.most_common(1)[0][0],
            errors=tuple(run.status for run in runs if run.status.startswith("error"))))
    return rows


__all__ = ["Summary", "summarize"]
