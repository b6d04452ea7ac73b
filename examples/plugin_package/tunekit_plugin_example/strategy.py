"""Reverse fallback: default int8 first, then ops back to fp32 one by one from the output end."""

from __future__ import annotations

from collections.abc import Iterator

from tunekit import QuantConfig, Strategy, TuneContext


class ReverseFallback(Strategy):
    """Keeps each fallback (cumulative) until the accuracy goal is met; output-side ops are
    often the most sensitive in classifiers, so they go first."""

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        config = ctx.space.default()
        yield config
        for op in reversed(ctx.space.ops):
            if ctx.history.last is not None and ctx.history.last.accepted:
                return
            config = config.with_op(op, ctx.space.option(op, "fp32"))
            yield config
