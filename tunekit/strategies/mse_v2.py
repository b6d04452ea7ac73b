"""The mse_v2 strategy: fall back by sensitivity until the goal holds, then win ops back.

Phase 1 starts from default int8 and falls back one op per trial, each time the int8 op with the
largest output MSE in the current config (re-measured after every step, so an op that only
looked bad because of an upstream culprit is spared). Phase 2 takes the fallen-back ops, least
harmful first (lowest MSE when they are quantized again), and returns each one to its default
int8 option if the goal still holds: fewer float ops, a faster model.

As in Intel Neural Compressor's mse_v2; unlike it, a fallback that breaks the candidate moves on
to the op's next fallback precision instead of counting as a failed step, and when every op has
fallen back to bf16 without meeting the goal, phase 1 repeats the walk with fp32.

Accepted configs become faster during phase 2, so the tuner is asked not to stop at the first one
(:attr:`first_accept_is_final`); it keeps the best accepted config.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

from tunekit.history import Trial
from tunekit.space import OpKey, QuantConfig
from tunekit.strategies.walk import Walker, fallback_candidates, isolated_sensitivity, rank
from tunekit.strategy import Strategy, TuneContext

PRECISIONS = ("first", "fp32")


class MSEv2Strategy(Strategy):
    """Two-phase sensitivity fallback and re-quantization. No parameters."""

    @property
    def first_accept_is_final(self) -> bool:
        return False

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        walker = Walker(ctx)
        default = ctx.space.default()
        trial = yield from walker.visit(default)
        accepted = trial if trial.accepted else None
        for which in PRECISIONS:
            if accepted is not None:
                break
            accepted = yield from _phase_one(walker, default, which)
        if accepted is not None:
            yield from _phase_two(walker, default, accepted.config)


def _phase_one(walker: Walker, default: QuantConfig,
               which: str) -> Generator[QuantConfig, None, Trial | None]:
    """Fall back the most sensitive int8 op, one per trial; the accepted trial or None."""
    ctx, config = walker.ctx, default
    while ops := fallback_candidates(ctx.space, config):
        op = rank(isolated_sensitivity(ctx, config, ops), ops)[0]
        options = ctx.space.fallbacks(op)
        if which == "fp32":
            options = [o for o in options if o.precision == "fp32"] or options
        for option in options:
            trial = yield from walker.visit(config.with_op(op, option))
            if not trial.failed:
                break
        if trial.accepted:
            return trial
        config = config.with_op(op, options[-1]) if trial.failed else trial.config
    return None


def _phase_two(walker: Walker, default: QuantConfig,
               config: QuantConfig) -> Iterator[QuantConfig]:
    """Re-quantize fallen-back ops, least harmful first, keeping each that keeps the goal."""
    ctx = walker.ctx
    fallen: list[OpKey] = [op for op in ctx.space.ops
                           if config.ops[op] != default.ops[op]
                           and default.precision_of(op) == "int8"]
    if not fallen:
        return
    requantized = config.with_ops({op: default.ops[op] for op in fallen})
    scores = isolated_sensitivity(ctx, requantized, fallen)
    for op in reversed(rank(scores, fallen)):
        trial = yield from walker.visit(config.with_op(op, default.ops[op]))
        if trial.accepted:
            config = trial.config


__all__ = ["MSEv2Strategy"]
