"""Strategy ``amp``: accuracy-driven fallback of auto mixed precision, op type first, then op.

A bf16/fp32 space has none of the int8 items the basic strategy's middle stage tunes, and basic
falls back op by op only. Here, after every op in bf16 misses the goal:

1. **op-type-wise**: each op type alone back to fp32 (the type with the most ops first), the rest
   bf16: the first that meets the goal wins. One sensitive type (e.g. every Linear of a
   classifier head) costs one trial per type instead of one per op;
2. **op-wise**: each op alone back to fp32 ranks the ops (best metric first, published as the
   ``"fallback_impact"`` sensitivity), then they fall back cumulatively in that order until the
   goal holds;
3. **polish** (:mod:`tunekit.strategies.polish`): the fp32 ops return to bf16 in groups while the
   goal holds, so the answer is 1-minimal (a whole op type back in fp32 rarely needs to be).

Graph optimization uses it when ``tuning.strategy`` is left at its default; a config naming
another strategy gets that one.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

from tunekit.history import Trial
from tunekit.space import OpKey, QuantConfig
from tunekit.strategies.polish import polish
from tunekit.strategies.walk import Walker
from tunekit.strategy import Strategy, TuneContext


class AMPStrategy(Strategy):
    """All bf16, then op types back to fp32 one at a time, then ops ranked and accumulated, then
    polish."""

    @property
    def first_accept_is_final(self) -> bool:
        return False  # the polish stage follows the first accepted config

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        walker = Walker(ctx)
        base = ctx.space.uniform("bf16")
        accepted = yield from _fallback(walker, base)
        if accepted is not None:
            yield from polish(walker, accepted, {op: ctx.space.option(op, "bf16")
                                                 for op in ctx.space.ops
                                                 if "bf16" in ctx.space.precisions(op)})


def _fallback(walker: Walker, base: QuantConfig) -> Generator[QuantConfig, None,
                                                                 QuantConfig | None]:
    """All bf16, then op types, then ranked ops back to fp32; the first accepted config."""
    ctx, space = walker.ctx, walker.ctx.space
    ctx.enter_stage("default")
    trial = yield from walker.visit(base)
    if trial.accepted:
        return None
    base_score = _score(ctx, trial)
    fp32 = {op: space.option(op, "fp32") for op in space.ops if "fp32" in space.precisions(op)}
    ctx.enter_stage("op_type")
    for ops in sorted(space.by_type().values(), key=len, reverse=True):  # stable: space order
        trial = yield from walker.visit(base.with_ops({op: fp32[op] for op in ops if op in fp32}))
        if trial.accepted:
            return trial.config
    ctx.enter_stage("fallback_single")
    scores: dict[OpKey, float] = {}
    for op, option in fp32.items():
        trial = yield from walker.visit(base.with_op(op, option))
        if trial.accepted:
            return None  # one op in fp32: 1-minimal already
        scores[op] = _score(ctx, trial)
    ctx.record_sensitivity("fallback_impact", {  # the metric gained by the op alone in fp32
        op: base_score - score for op, score in scores.items()
        if score != float("inf") != base_score})
    ctx.enter_stage("fallback_accumulated")
    config = base
    for op in sorted(fp32, key=lambda op: scores[op]):  # stable: ties in space order
        config = config.with_op(op, fp32[op])
        trial = yield from walker.visit(config)
        if trial.accepted:
            return config
    return None


def _score(ctx: TuneContext, trial: Trial) -> float:
    """Sort key of an op by its single-fallback trial: the best metric first, failures last."""
    if trial.failed or trial.metric is None:
        return float("inf")
    return -trial.metric if ctx.criterion.higher_is_better else trial.metric


__all__ = ["AMPStrategy"]
