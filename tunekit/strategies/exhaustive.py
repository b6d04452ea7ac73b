"""The exhaustive strategy: every config of the space, the ones closest to default int8 first.

Configs are generated lazily by how many ops differ from the default (0, 1, 2, ...), so the
fastest candidates come first and a goal reachable by changing one op is met after at most one
trial per alternative option, while the whole space is still covered on a long enough budget.
Intel Neural Compressor's exhaustive walks the cartesian product of int8 parameters in
lexicographic order (201 trials on the digits fallback case without meeting the goal).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from tunekit.space import QuantConfig, TuningSpace
from tunekit.strategies.walk import batched
from tunekit.strategy import Batch, Strategy, TuneContext


class ExhaustiveStrategy(Strategy):
    """All configs of the space, by number of ops off the default. No parameters."""

    def propose(self, ctx: TuneContext) -> Iterator[Batch]:
        yield from batched(by_distance(ctx.space))


def by_distance(space: TuningSpace) -> Iterator[QuantConfig]:
    """Every config once, ordered by the number of ops away from :meth:`TuningSpace.default`,
    then by op and option order."""
    default = space.default()
    ops = space.ops
    for distance in range(len(ops) + 1):
        for changed in itertools.combinations(ops, distance):
            alternatives = [space.options[op][1:] for op in changed]
            for options in itertools.product(*alternatives):
                yield default.with_ops(dict(zip(changed, options)))


__all__ = ["ExhaustiveStrategy", "by_distance"]
