"""The random strategy: seeded random configs, each one new, until the space is exhausted.

Per op, a precision is drawn uniformly, then one of its options (so int8's many parameter
combinations do not drown the float fallbacks). A config already drawn is drawn again rather than
proposed twice, and nothing is materialised: the space may be astronomically large. Intel Neural
Compressor's random re-proposes one config over and over on the digits case (198 of 200 trials
skipped as duplicates).
"""

from __future__ import annotations

from collections.abc import Iterator

from tunekit.strategies.walk import FreshSampler, batched, random_config
from tunekit.strategy import Batch, Strategy, TuneContext


class RandomStrategy(Strategy):
    """Fresh uniform random configs from ``ctx.rng``. No parameters."""

    def propose(self, ctx: TuneContext) -> Iterator[Batch]:
        sampler = FreshSampler(ctx.space)
        draws = iter(lambda: sampler.draw(lambda: random_config(ctx.space, ctx.rng)), None)
        yield from batched(draws)


__all__ = ["RandomStrategy"]
