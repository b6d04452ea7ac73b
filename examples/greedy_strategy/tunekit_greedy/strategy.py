"""Greedy fallback: quantize everything, then return ops to a float precision one at a time."""

from __future__ import annotations

from collections.abc import Iterator

from tunekit import QuantConfig, Strategy, TuneContext


class GreedyFallback(Strategy):
    """Fall ops back cumulatively in model order until the goal holds."""

    def __init__(self, *, fallback: str = "fp32", max_fallbacks: int = 10) -> None:
        self.fallback = fallback
        self.max_fallbacks = max_fallbacks

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        config = ctx.space.default()
        yield config
        for op in ctx.space.ops[: self.max_fallbacks]:
            if ctx.history.last.accepted:
                return
            if self.fallback not in ctx.space.precisions(op):
                continue
            option = ctx.space.option(op, self.fallback)
            if config.ops[op] != option:  # an op already in fallback: nothing to propose
                config = config.with_op(op, option)
                yield config
