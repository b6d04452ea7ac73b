"""The mse strategy: basic's fallback, with the op order from measured quantization error.

Default int8 first; if it misses the goal, the int8 ops fall back cumulatively, the op whose
output differs most from FP32 (MSE over a few calibration batches, :attr:`TuneContext.sensitivity`,
measured once on the default config) first. Where basic spends one trial per op to rank the ops,
this spends one inspection, so a single culprit is usually found in two trials.

Intel Neural Compressor's mse strategy does the same, but ranks with the output MSE of each op
taken alone in int8 and re-measures after each fallback; one measurement on the default config
is enough to order the culprits here and costs no trial.
"""

from __future__ import annotations

from collections.abc import Iterator

from tunekit.space import QuantConfig
from tunekit.strategies.walk import isolated_sensitivity, ranked_fallback
from tunekit.strategy import Strategy, TuneContext


class MSEStrategy(Strategy):
    """Default int8, then cumulative fallback in descending per-op MSE order. No parameters."""

    @property
    def first_accept_is_final(self) -> bool:
        return False  # the polish stage follows the first accepted config

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        yield from ranked_fallback(
            ctx, lambda default, ops: isolated_sensitivity(ctx, default, ops), "mse")


__all__ = ["MSEStrategy"]
