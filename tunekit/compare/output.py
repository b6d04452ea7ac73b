"""What ``tunekit compare`` shows and writes: a table and raw CSV/JSON (the figure:
:mod:`tunekit.compare.figure`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from tunekit.compare.run import Comparison
from tunekit.compare.summary import Summary

COLUMNS = ("strategy", "met", "trials to goal", "evals incl. FP32", "time to goal s",
           "trials run", "best objective", "final mix")


def _fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else format(value, pattern)


def table(rows: Sequence[Summary]) -> str:
    """A fixed-width text table; medians over seeds."""
    body = [(r.strategy, f"{r.met}/{r.seeds}", _fmt(r.trials_to_goal, "g"),
             _fmt(None if r.trials_to_goal is None else r.trials_to_goal + 1, "g"),
             _fmt(r.time_to_goal_s, ".2f"), _fmt(r.trials, "g"), _fmt(r.best_objective, ".3f"),
             r.mix) for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(COLUMNS, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in (COLUMNS, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"{r.strategy}: {error}" for r in rows for error in r.errors]
    return "\n".join(lines + notes)


def write_raw(comparison: Comparison, rows: Sequence[Summary], folder: Path) -> list[Path]:
    """``compare.csv`` (one line per trial) and ``compare.json`` (baseline, summary, trials)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / "compare.csv", folder / "compare.json"
    fields = ("strategy", "seed", "number", "metric", "objective", "accepted", "failed", "cached",
              "duration_s", "elapsed_s", "config")
    trials = [{"strategy": run.strategy, "seed": run.seed, "number": t.number, "metric": t.metric,
               "objective": t.objective, "accepted": t.accepted, "failed": t.failed,
               "cached": t.cached, "duration_s": round(t.duration_s, 4),
               "elapsed_s": round(t.elapsed_s, 4), "config": t.config.to_json()}
              for run in comparison.runs for t in run.trials]
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(trials)
    json_path.write_text(json.dumps({
        "baseline": comparison.baseline, "target": comparison.target,
        "evaluations": comparison.evaluations,
        "runs": [{"strategy": r.strategy, "seed": r.seed, "status": r.status}
                 for r in comparison.runs],
        "summary": [vars(r) for r in rows], "trials": trials}, indent=1), encoding="utf-8")
    return [csv_path, json_path]


__all__ = ["COLUMNS", "table", "write_raw"]
