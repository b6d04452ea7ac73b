"""Which trial is the result: the rules the tuner keeps its best model by (:func:`is_better`),
also used by ``tunekit compare`` and the strategy test driver so that both judge what a tuning
would return."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from tunekit.criterion import AccuracyCriterion
from tunekit.history import Trial
from tunekit.space import QuantConfig
from tunekit.speed import BUSY

#: Relative objective difference within which two passing candidates count as equally fast
#: (timing noise on a busy machine); the one with fewer ops in float is then kept.
OBJECTIVE_NOISE = 0.05


def preferred_passing(trial: Trial, best: Trial) -> Trial | None:
    """Of two passing candidates, the one to keep; None: let the metric decide.

    The objective decides, except that a candidate whose config only returns ops to a lower
    precision than the other's (a polish step) wins unless it is measurably slower: more ops in
    int8 is what the tuning is after, and a difference inside timing noise (:func:`noise`) says
    nothing."""
    for lower, higher in ((trial, best), (best, trial)):
        if lower.config.lowers(higher.config) and (
                lower.objective is None or higher.objective is None
                or lower.objective <= higher.objective * (1 + noise(lower, higher))):
            return lower
    if trial.objective is not None and best.objective is not None \
            and trial.objective != best.objective:
        return trial if trial.objective < best.objective else best
    return None


def noise(*trials: Trial) -> float:
    """The relative objective difference the trials' figures cannot resolve: at least
    :data:`OBJECTIVE_NOISE`, twice a figure's own spread where its rounds disagreed more, and
    unbounded where one was timed while other processes kept the machine busy (``foreign_cpu``
    above :data:`~tunekit.speed.BUSY`): on the BERT row of ``benchmarks/vs_nncf.py`` a candidate
    timed under 62 % foreign load read 1.10× FP32 and displaced a polished one with 15 more ops
    in int8 that read 1.01× on a quiet machine; the benchmark then timed the
    returned model at 0.90× FP32."""
    found = OBJECTIVE_NOISE
    for trial in trials:
        for key, value in trial.details.items():
            if key.endswith(".foreign_cpu") and value > BUSY:
                return math.inf
            if key.endswith(".spread"):
                found = max(found, 2 * value)
    return found


def best_passing(trials: Iterable[Trial], criterion: AccuracyCriterion) -> Trial | None:
    """The passing trial a tuning returns, as the tuner keeps it among those no slower than FP32:
    by :func:`preferred_passing`, else by metric (the earlier on a tie); None if none passes."""
    best: Trial | None = None
    for trial in trials:
        if not trial.accepted:
            continue
        preferred = None if best is None else preferred_passing(trial, best)
        if best is None or preferred is trial or (
                preferred is None and criterion.better(trial.metric or 0.0, best.metric or 0.0)):
            best = trial
    return best


def all_fp32(config: QuantConfig) -> bool:
    """Whether ``config`` leaves every op in FP32: the FP32 model, whatever its timing says
    (noise timed it 1.03× "faster" on a loaded machine), so it is never the result."""
    return all(c.precision == "fp32" for c in config.ops.values())


def is_better(trial: Trial, best: Trial | None, criterion: AccuracyCriterion,
              not_faster: Callable[[Trial], bool]) -> bool:
    """Whether ``trial`` displaces ``best`` as the tuning's result: a passing trial beats any
    failing one, never one that is ``not_faster`` than FP32 or is FP32 itself (then the FP32
    model is kept); among passing trials :func:`preferred_passing` decides, then the metric; a
    failing trial whose metric is only an early-rejection bound never displaces a model kept
    before."""
    if trial.failed or (trial.accepted and (not_faster(trial) or all_fp32(trial.config))):
        return False
    if best is None:
        return True
    if trial.accepted != best.accepted:
        return trial.accepted
    if not trial.accepted and trial.details.get("early_rejected"):
        return False
    if trial.accepted:
        preferred = preferred_passing(trial, best)
        if preferred is not None:
            return preferred is trial
    return criterion.better(trial.metric or 0.0, best.metric or 0.0)


__all__ = ["OBJECTIVE_NOISE", "all_fp32", "best_passing", "is_better", "noise", "preferred_passing"]
