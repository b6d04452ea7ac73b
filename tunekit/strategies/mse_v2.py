"""The mse_v2 strategy: fall back by sensitivity until the goal holds, then win ops back.

Phase 1 starts from default int8 and falls back one op per trial, each time the int8 op with the
largest output MSE in the current config (re-measured after every step, so an op that only
looked bad because of an upstream culprit is spared). Phase 2 takes the fallen-back ops, least
harmful first (lowest MSE when they are quantized again), and returns them to their default
int8 option while the goal still holds: fewer float ops, a faster model. INC returns them one
trial per op; here phase 2 is the shared polish stage (:mod:`tunekit.strategies.polish`), which
returns them in groups and ends 1-minimal.

As in Intel Neural Compressor's mse_v2; unlike it, a fallback that breaks the candidate moves on
to the op's next fallback precision instead of counting as a failed step, and when every op has
fallen back to bf16 without meeting the goal, phase 1 repeats the walk with fp32.

Accepted configs become faster during phase 2, so the tuner is asked not to stop at the first one
(:attr:`first_accept_is_final`); it keeps the best accepted config.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

from tunekit.history import Trial
from tunekit.space import QuantConfig
from tunekit.strategies.polish import int8_targets, polish
from tunekit.strategies.walk import Walker, fallback_candidates, isolated_sensitivity, rank
from tunekit.strategy import Strategy, TuneContext

#: Phase one's fallback targets, in order: the first fallback the space offers each op, then fp32
#: only (a stage per target, ``fallback_<target>``).
FALLBACK_TARGETS = ("first", "fp32")


class MSEv2Strategy(Strategy):
    """Two-phase sensitivity fallback and re-quantization. No parameters."""

    @property
    def first_accept_is_final(self) -> bool:
        return False

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        walker = Walker(ctx)
        default = ctx.space.default()
        ctx.enter_stage("default")
        trial = yield from walker.visit(default)
        accepted = trial if trial.accepted else None
        for which in FALLBACK_TARGETS:
            if accepted is not None:
                break
            accepted = yield from _phase_one(walker, default, which)
        if accepted is not None:
            yield from _phase_two(walker, default, accepted.config)


def _phase_one(walker: Walker, default: QuantConfig,
               which: str) -> Generator[QuantConfig, None, Trial | None]:
    """Fall back the most sensitive int8 op, one per trial; the accepted trial or None."""
    ctx, config = walker.ctx, default
    ctx.enter_stage(f"fallback_{which}")
    while ops := fallback_candidates(ctx.space, config):
        scores = isolated_sensitivity(ctx, config, ops)
        ctx.record_sensitivity("mse", scores)
        op = rank(scores, ops)[0]
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
    """Re-quantize fallen-back ops, least harmful first, while the goal holds (polish)."""
    ctx = walker.ctx
    targets = int8_targets(default)
    fallen = [op for op in targets if config.ops[op] != targets[op]]
    if not fallen:
        return
    requantized = config.with_ops({op: targets[op] for op in fallen})
    yield from polish(walker, config, targets, isolated_sensitivity(ctx, requantized, fallen))


__all__ = ["MSEv2Strategy"]
