"""What the model-based searches (bayesian, tpe) share: a config ↔ categorical-parameters
encoding and one reading of a trial as a number to optimize.

Each op is one categorical parameter whose values are its option indices in the space, so the
searches choose among real options (never integer-rounded floats) and every suggestion decodes to
a config of the space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tunekit.history import Trial
from tunekit.space import QuantConfig, TuningSpace
from tunekit.strategy import TuneContext

#: The score of a failed trial: below any trial that produced a metric.
FAILED_SCORE = -1.0


class Encoding:
    """Ops of ``space`` with a choice as parameters ``"0", "1", ...`` (op order) with values
    ``"0", "1", ...`` (option order); string values because bayesian-optimization treats only
    non-numeric tuples as categorical. Ops with a single option are no parameter (both searches
    reject one-value categories) and always take that option."""

    def __init__(self, space: TuningSpace) -> None:
        self.space = space
        self.ops = {str(i): op for i, op in enumerate(space.ops) if len(space.options[op]) > 1}

    def choices(self) -> dict[str, tuple[str, ...]]:
        return {key: tuple(str(i) for i in range(len(self.space.options[op])))
                for key, op in self.ops.items()}

    def params(self, config: QuantConfig) -> dict[str, str]:
        return {key: str(self.space.options[op].index(config.ops[op]))
                for key, op in self.ops.items()}

    def config(self, params: Mapping[str, Any]) -> QuantConfig:
        chosen = {op: self.space.options[op][int(params[key])] for key, op in self.ops.items()}
        return self.space.default().with_ops(chosen)


def margin(ctx: TuneContext, trial: Trial) -> float | None:
    """How far the metric is past the accuracy target, relative to the baseline (≥ 0: meets it,
    negative: misses it); None for a failed trial."""
    if trial.failed or trial.metric is None:
        return None
    baseline = ctx.history.baseline_metric
    assert baseline is not None, "the tuner sets the baseline before the strategy runs"
    past = trial.metric - ctx.criterion.target(baseline)
    if not ctx.criterion.higher_is_better:
        past = -past
    return past / (abs(baseline) or 1.0)


def score(ctx: TuneContext, trial: Trial) -> float:
    """One number to maximize that puts the accuracy goal before the objective: a trial that
    misses the goal scores its (negative) margin; one that meets it scores 1 plus how much faster
    than FP32 it is (``2 - objective``, objective 1.0 = as FP32); failures score lowest."""
    past = margin(ctx, trial)
    if past is None:
        return FAILED_SCORE
    if not trial.accepted:
        return min(past, 0.0)
    return 1.0 + max(0.0, 1.0 - trial.objective) if trial.objective is not None else 1.0


__all__ = ["FAILED_SCORE", "Encoding", "margin", "score"]
