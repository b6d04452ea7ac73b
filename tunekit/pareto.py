"""The Pareto front of passing trials: the trade-offs a weighted score would hide.

A passing trial is on the front when no other passing trial is at least as good in the metric
and in every objective and better in one. The metric is a dimension too, so a front over one
objective (latency) still shows the accuracy each speed-up costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tunekit.history import Trial


def pareto_front(trials: Sequence[Trial], directions: Mapping[str, str],
                 higher_is_better: bool) -> tuple[Trial, ...]:
    """Passing trials with every objective in ``directions`` measured, not dominated, by number.

    ``directions`` maps objective names to ``minimize``/``maximize``.
    """
    candidates: list[Trial] = []
    for t in trials:  # a config proposed twice is one point, under its first trial
        if t.accepted and not t.failed and t.metric is not None \
                and all(name in t.details for name in directions) \
                and all(c.config != t.config for c in candidates):
            candidates.append(t)
    points = {t.number: _costs(t, directions, higher_is_better) for t in candidates}
    front = {t.number: t for t in candidates
             if not any(_dominates(points[o.number], points[t.number]) for o in candidates)}
    return tuple(front[n] for n in sorted(front))


def _costs(trial: Trial, directions: Mapping[str, str], higher_is_better: bool
           ) -> tuple[float, ...]:
    """The trial as a point where lower is better on every axis."""
    assert trial.metric is not None
    metric = -trial.metric if higher_is_better else trial.metric
    return (metric, *(trial.details[n] if d == "minimize" else -trial.details[n]
                      for n, d in directions.items()))


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))
