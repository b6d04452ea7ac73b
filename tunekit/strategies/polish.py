"""The polish stage every fallback strategy ends with: win ops back until the answer is 1-minimal.

A fallback strategy stops at the first config that meets the goal, and how it got there (a
prefix of ranked ops, a whole op type, a cumulative walk) usually leaves ops in float that need
not be. Polish returns them to their lower precision (int8, or bf16 for auto mixed precision)
while the goal holds, so that at the end **no op left in float can return alone with the goal
still met** (the answer is 1-minimal).

It works by adaptive group testing, not one trial per op: the float ops, least sensitive first,
are returned all at once; a group that fails is halved and each half tried on top of what has
been won so far. A group with no culprit costs one trial however large, so ``k`` ops that must
stay float among ``m`` cost about ``k·log2(m/k)`` trials, and a single culprit about
``log2(m)``: once the first half of a failed group is returned, returning the second half gives
the config that already failed, which the walker answers without a trial.

The halving finds each kept op failing on the config of its time; ops won back later lower the
config, so a last pass asks each kept op again on the final config. Where the kept op's config
of its time is the final one, the walker answers from the history; otherwise the pass costs a
trial per kept op, which a metric that only falls as ops go to int8 always rejects, and which
wins back an op whose failure a noisy metric decided. The pass runs once: on BERT with a
256-sample metric a second pass cost 25 trials (a third of the tuning) and won back nothing,
each of those ops having been asked in the first pass on a config at most three ops away.

An op that cannot return to its int8 option may still run int8 another way: where the space
offers the other approach (dynamic int8 for a static op, as ONNX Runtime and PyTorch do for
linear ops), polish tries it, one trial per op still in float, before leaving the op there. A
Gemm whose activations calibrate badly often keeps its accuracy with dynamic int8.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence

from tunekit.space import PRECISIONS, OpConfig, OpKey, QuantConfig
from tunekit.strategies.walk import Walker, rank
from tunekit.strategy import Batch

#: The stage name of polish trials in the history, result and report.
POLISH = "polish"

Proposals = Generator[QuantConfig | Batch, None, QuantConfig]


def polish(walker: Walker, config: QuantConfig, lower: Mapping[OpKey, OpConfig],
           scores: Mapping[OpKey, float] | None = None) -> Proposals:
    """Starting from the accepted ``config``, return ops to ``lower[op]`` (a lower precision than
    theirs in ``config``) while the goal holds; the final accepted config. ``scores`` (higher =
    more sensitive) order the ops, least sensitive first; without them, last ops first."""
    out = [op for op, option in lower.items() if _higher(config.ops[op], option)]
    if not out:
        return config
    walker.ctx.enter_stage(POLISH)
    order = list(reversed(rank(scores or {}, sorted(out))))
    config = yield from _return(walker, config, order, lower)
    for op in [op for op in order if _higher(config.ops[op], lower[op])]:  # the last pass
        trial = yield from walker.visit(config.with_op(op, lower[op]))
        if trial.accepted:
            config = trial.config
    return (yield from _other_approach(walker, config, order, lower))


def _other_approach(walker: Walker, config: QuantConfig, order: Sequence[OpKey],
                    lower: Mapping[OpKey, OpConfig]) -> Proposals:
    """Each op still above its int8 target tried with the target's other approach(es)."""
    space = walker.ctx.space
    for op in [op for op in order if _higher(config.ops[op], lower[op])]:
        for option in space.alternatives(op, lower[op], "approach"):
            trial = yield from walker.visit(config.with_op(op, option))
            if trial.accepted:
                config = trial.config
                break
    return config


def _return(walker: Walker, config: QuantConfig, group: Sequence[OpKey],
            lower: Mapping[OpKey, OpConfig]) -> Proposals:
    """Return ``group`` at once; on failure, each half in turn on top of what was won."""
    trial = yield from walker.visit(config.with_ops({op: lower[op] for op in group}))
    if trial.accepted:
        return trial.config
    if len(group) == 1:
        return config
    half = len(group) // 2
    config = yield from _return(walker, config, group[:half], lower)
    return (yield from _return(walker, config, group[half:], lower))


def _higher(current: OpConfig, lower: OpConfig) -> bool:
    return PRECISIONS.index(current.precision) > PRECISIONS.index(lower.precision)


def int8_targets(base: QuantConfig) -> dict[OpKey, OpConfig]:
    """The options polish returns ops to in an int8 tuning: each int8 op's option in ``base``
    (the default config, or the one whose int8 parameters were tuned)."""
    return {op: option for op, option in base.ops.items() if option.precision == "int8"}


def is_one_minimal(accepts: Callable[[QuantConfig], bool], config: QuantConfig,
                   lower: Mapping[OpKey, OpConfig]) -> bool:
    """Brute-force check (tests, benchmarks): no op of ``config`` above ``lower`` can return
    alone with ``accepts`` still true."""
    return not any(accepts(config.with_op(op, option)) for op, option in lower.items()
                   if _higher(config.ops[op], option))


__all__ = ["POLISH", "int8_targets", "is_one_minimal", "polish"]
