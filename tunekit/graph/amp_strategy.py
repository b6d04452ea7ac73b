"""Strategy ``amp``: accuracy-driven fallback of auto mixed precision, op type first, then op.

A bf16/fp32 space has none of the int8 items the basic strategy's middle stage tunes, and basic
falls back op by op only. Here, after every op in bf16 misses the goal:

1. **op-type-wise**: each op type alone back to fp32 (the type with the most ops first), the rest
   bf16: the first that meets the goal wins. One sensitive type (e.g. every Linear of a
   classifier head) costs one trial per type instead of one per op;
2. **op-wise**: each op alone back to fp32 ranks the ops (best metric first), then they fall back
   cumulatively in that order until the goal holds.

Graph optimization uses it when ``tuning.strategy`` is left at its default; a config naming
another strategy gets that one.
"""

from __future__ import annotations

from collections.abc import Iterator

from tunekit.history import Trial
from tunekit.space import OpKey, QuantConfig
from tunekit.strategies.walk import Walker
from tunekit.strategy import Strategy, TuneContext


class AMPStrategy(Strategy):
    """All bf16, then op types back to fp32 one at a time, then ops ranked and accumulated."""

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        walker = Walker(ctx)
        space = ctx.space
        base = space.uniform("bf16")
        trial = yield from walker.visit(base)
        if trial.accepted:
            return
        fp32 = {op: space.option(op, "fp32") for op in space.ops
                if "fp32" in space.precisions(op)}
        types = sorted(space.by_type().values(), key=len, reverse=True)  # stable: space order
        for ops in types:
            trial = yield from walker.visit(base.with_ops({op: fp32[op] for op in ops
                                                           if op in fp32}))
            if trial.accepted:
                return
        scores: dict[OpKey, float] = {}
        for op, option in fp32.items():
            trial = yield from walker.visit(base.with_op(op, option))
            if trial.accepted:
                return
            scores[op] = _score(ctx, trial)
        config = base
        for op in sorted(fp32, key=lambda op: scores[op]):  # stable: ties in space order
            config = config.with_op(op, fp32[op])
            trial = yield from walker.visit(config)
            if trial.accepted:
                return


def _score(ctx: TuneContext, trial: Trial) -> float:
    """Sort key of an op by its single-fallback trial: the best metric first, failures last."""
    if trial.failed or trial.metric is None:
        return float("inf")
    return -trial.metric if ctx.criterion.higher_is_better else trial.metric


__all__ = ["AMPStrategy"]
