"""``compare.png``: each strategy's path through its trials, and what reaching the goal cost.

Strategies often propose the same first configs (default int8 comes first in nearly all), so
their paths coincide. Each run therefore gets its own colour, marker and line style, and its
points are shifted sideways by a small, fixed amount (at most ±0.3 of a trial) so that
identical paths lie side by side instead of on top of each other. Filled markers are trials that
meet the goal, hollow ones trials that miss it, red crosses trials that failed. The right-hand
bars are the medians over seeds of the evaluations (the FP32 baseline included) and the wall
time each strategy needed to reach the goal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunekit.compare.run import Comparison, RunRecord
from tunekit.compare.summary import Summary

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LINES = ("-", "--", "-.", ":")
FAIL = "#c62828"


def _style(index: int) -> dict[str, Any]:
    return {"color": f"C{index % 10}", "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINES[index % len(LINES)]}


def _offsets(runs: Sequence[RunRecord]) -> list[float]:
    """A sideways shift per run, centred on zero, at most ±0.3 trial in all."""
    step = min(0.12, 0.6 / max(len(runs) - 1, 1))
    return [(i - (len(runs) - 1) / 2) * step for i in range(len(runs))]


def plot(comparison: Comparison, rows: Sequence[Summary], path: Path) -> Path:
    """Write :func:`draw`'s figure to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    figure = draw(comparison, rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def draw(comparison: Comparison, rows: Sequence[Summary]) -> Any:
    """The figure: paths on the left (metric above, objective below), costs to the goal on the
    right; the caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(13, 7.5))
    grid = figure.add_gridspec(2, 2, width_ratios=(2.2, 1))
    metric = figure.add_subplot(grid[0, 0])
    objective = figure.add_subplot(grid[1, 0], sharex=metric)
    strategies = list(dict.fromkeys(run.strategy for run in comparison.runs))
    failed: list[float] = []
    for run, shift in zip(comparison.runs, _offsets(comparison.runs)):
        style = _style(strategies.index(run.strategy))
        first = run.seed == min(r.seed for r in comparison.runs if r.strategy == run.strategy)
        _path(metric, run, shift, style, "metric", run.strategy if first else None)
        _path(objective, run, shift, style, "objective", None)
        failed += [t.number + shift for t in run.trials if t.failed]
    _reference_lines(metric, comparison)
    if failed:  # at the bottom edge, once every path has set the axis' range
        metric.scatter(failed, [metric.get_ylim()[0]] * len(failed), marker="x", color=FAIL,
                       clip_on=False, zorder=3, label="failed")
    metric.set_ylabel("metric")
    metric.legend(fontsize="small", loc="best")
    objective.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="FP32 (1.0)")
    objective.set_ylabel("objective (×FP32, lower is better)")
    objective.set_xlabel("trial (runs shifted sideways so identical paths stay visible; "
                         "filled: meets the goal)")
    objective.legend(fontsize="small", loc="best")
    for ax in (metric, objective):
        ax.grid(alpha=0.3)
    _bars(figure.add_subplot(grid[0, 1]), rows, strategies, "evaluations to goal (incl. FP32)",
          [None if r.trials_to_goal is None else r.trials_to_goal + 1 for r in rows], "g")
    _bars(figure.add_subplot(grid[1, 1]), rows, strategies, "wall time to goal (s)",
          [r.time_to_goal_s for r in rows], ".3g")
    figure.tight_layout()
    return figure


def _path(ax: Any, run: RunRecord, shift: float, style: dict[str, Any], field: str,
          label: str | None) -> None:
    """One run's line, its passing trials filled, the others hollow."""
    points = [(t.number + shift, getattr(t, field), t.accepted) for t in run.trials
              if not t.failed and getattr(t, field) is not None]
    if points:
        xs, ys, passed = zip(*points)
        ax.plot(xs, ys, color=style["color"], linestyle=style["linestyle"], alpha=0.7,
                linewidth=1.2, label=label)
        for accepted in (True, False):
            chosen = [(x, y) for x, y, p in zip(xs, ys, passed) if p == accepted]
            if chosen:
                ax.scatter(*zip(*chosen), marker=style["marker"], s=36, zorder=3,
                           color=style["color"] if accepted else "none",
                           edgecolors=style["color"])


def _reference_lines(ax: Any, comparison: Comparison) -> None:
    ax.axhline(comparison.baseline["metric"], color="grey", linestyle="--", linewidth=1,
               label=f"FP32 {comparison.baseline['metric']:.4g}")
    if comparison.target is not None:
        ax.axhline(comparison.target, color=FAIL, linewidth=1.2,
                   label=f"target {comparison.target:.4g}")


def _bars(ax: Any, rows: Sequence[Summary], strategies: list[str], title: str,
          values: Sequence[float | None], pattern: str) -> None:
    """Horizontal bars per strategy; a strategy that never met the goal (or raised in every
    run) says so instead."""
    positions = range(len(rows))
    ax.barh(positions, [v or 0.0 for v in values],
            color=[_style(strategies.index(r.strategy))["color"] for r in rows])
    for y, row, value in zip(positions, rows, values):
        missed = " strategy failed" if row.errors and not row.met else " goal not met"
        text = (f" {format(value, pattern)}" if value is not None else missed) + \
            (f" ({row.met}/{row.seeds} seeds)" if row.seeds > 1 else "")
        ax.text(value or 0.0, y, text, va="center", fontsize="small")
    ax.set_yticks(list(positions), [r.strategy for r in rows])
    ax.invert_yaxis()
    ax.set_title(title, fontsize="medium")
    ax.margins(x=0.35)
    ax.grid(axis="x", alpha=0.3)


__all__ = ["draw", "plot"]
