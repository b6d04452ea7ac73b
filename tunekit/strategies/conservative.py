"""The conservative strategy: start from FP32 and lower op types while the goal holds.

Intel Neural Compressor's quantization level 0, as :class:`~tunekit.strategies.basic.BasicStrategy`
implements it with ``order="conservative"`` (see that module for the walk and how it differs from
INC); offered under its own name so a comparison can list it beside the others.
"""

from __future__ import annotations

from collections.abc import Iterator

from tunekit.space import QuantConfig
from tunekit.strategies.basic import BasicStrategy
from tunekit.strategy import Strategy, TuneContext


class ConservativeStrategy(Strategy):
    """FP32 first, then int8 and bf16 op type by op type, keeping what passes. No parameters."""

    @property
    def first_accept_is_final(self) -> bool:
        return False

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        yield from BasicStrategy(order="conservative").propose(ctx)


__all__ = ["ConservativeStrategy"]
