"""Building blocks shared by the strategies: a no-repeat walker, ranked fallback, fresh sampling.

Kept out of the strategies themselves so that basic, mse, mse_v2 and hawq fall back in exactly the
same way and differ only in how they rank ops, which is what a strategy comparison should isolate.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence

from tunekit.errors import TunekitError
from tunekit.history import Trial
from tunekit.space import OpConfig, OpKey, QuantConfig, TuningSpace
from tunekit.strategy import Batch, Needed, TuneContext

log = logging.getLogger("tunekit")

#: Consecutive already-seen random draws after which :class:`FreshSampler` walks the space lazily.
_MAX_REJECTIONS = 64


class Walker:
    """The configs proposed so far in one run, with their trials, so none is proposed twice;
    and the signals (:class:`Batch`'s ``needed`` and ``final``) its next proposals carry, which a
    strategy sets per stage (None: the strategy's defaults). One walker per run, so this state
    dies with the run."""

    def __init__(self, ctx: TuneContext) -> None:
        self.ctx = ctx
        self.trials: dict[QuantConfig, Trial] = {}
        self.needed: Needed | None = None
        self.final: bool | None = None

    def visit(self, config: QuantConfig) -> Generator[QuantConfig | Batch, None, Trial]:
        """Propose ``config`` unless it was proposed before; its trial either way."""
        if config not in self.trials:
            plain = self.needed is None and self.final is None
            yield config if plain else self._batch((config,))
            self.trials[config] = self.ctx.history.last
        return self.trials[config]

    def _batch(self, configs: Iterable[QuantConfig]) -> Batch:
        return Batch(configs, needed=self.needed, final=self.final)

    def visit_batch(self, configs: Sequence[QuantConfig]
                    ) -> Generator[Batch, None, list[Trial]]:
        """Propose the configs not proposed before as one :class:`Batch`; every config's trial,
        in order."""
        new = self._batch(dict.fromkeys(c for c in configs if c not in self.trials))
        if new:
            yield new
            for config in new:
                trial = self.ctx.history.find(config)
                assert trial is not None, "the tuner answers every config of a batch"
                self.trials[config] = trial
        return [self.trials[config] for config in configs]


#: Configs per :class:`Batch` of the strategies whose proposals do not depend on results
#: (exhaustive, random): enough to keep several workers busy, few enough that a run stopping
#: at the first accepted config leaves little in flight.
BATCH_SIZE = 8


def batched(configs: Iterable[QuantConfig], size: int = BATCH_SIZE) -> Iterator[Batch]:
    """``configs`` in batches of ``size``, lazily (the stream may be endless)."""
    iterator = iter(configs)
    while batch := Batch(itertools.islice(iterator, size)):
        yield batch


def rank(scores: Mapping[OpKey, float], ops: Sequence[OpKey]) -> list[OpKey]:
    """``ops`` by score, the highest (most sensitive) first; ties and unscored ops keep space
    order, unscored ops last."""
    return sorted(ops, key=lambda op: -scores.get(op, float("-inf")))


def fallback_candidates(space: TuningSpace, config: QuantConfig) -> list[OpKey]:
    """The ops of ``config`` now in int8 that may fall back to a float precision."""
    return [op for op in space.ops if config.precision_of(op) == "int8" and space.fallbacks(op)]


def accumulate(walker: Walker, base: QuantConfig,
               ranked: Sequence[OpKey]) -> Generator[QuantConfig | Batch, None, Trial | None]:
    """Fall ``ranked`` ops back cumulatively, first to their first fallback (bf16 where allowed),
    then, if the goal is still missed, again to fp32; the accepted trial, or None. (Where the
    first fallback is fp32 the second pass repeats the first and proposes nothing.)

    An op whose fallback breaks the candidate (a failed trial) takes its next fallback at once: a
    build failure says nothing about whether the op hurts accuracy.
    """
    space = walker.ctx.space
    passes: list[Mapping[OpKey, Sequence[OpConfig]]] = [
        {op: space.fallbacks(op) for op in ranked},
        {op: [o for o in space.fallbacks(op) if o.precision == "fp32"] for op in ranked}]
    for targets in passes:
        config = base
        for op in ranked:
            for option in targets[op]:
                trial = yield from walker.visit(config.with_op(op, option))
                if trial.accepted:
                    return trial
                if not trial.failed:
                    config = trial.config
                    break
    return None


def ranked_fallback(ctx: TuneContext, scores: Callable[[QuantConfig, list[OpKey]],
                                                         Mapping[OpKey, float]],
                    source: str) -> Generator[QuantConfig | Batch, None, None]:
    """Default int8; if it misses the goal, its fallback-able ops fall back cumulatively in
    descending ``scores(default, ops)`` (published as ``source``), then the polish stage wins
    back what need not have fallen back (the shape of the mse and hawq strategies)."""
    from tunekit.strategies.polish import int8_targets, polish  # polish builds on this module

    walker = Walker(ctx)
    default = ctx.space.default()
    ctx.enter_stage("default")
    trial = yield from walker.visit(default)
    if trial.accepted:
        return
    ops = fallback_candidates(ctx.space, default)
    measured = scores(default, ops)
    ctx.record_sensitivity(source, measured)
    ctx.enter_stage("fallback")
    accepted = yield from accumulate(walker, default, rank(measured, ops))
    if accepted is not None:
        yield from polish(walker, accepted.config, int8_targets(default), measured)


def probe(ctx: TuneContext, source: str, measure: Callable[[], Mapping[OpKey, float]]
          ) -> Mapping[OpKey, float]:
    """A sensitivity proxy's scores, published as ``source``; none (with a log line saying why)
    where it cannot run: a proxy only orders a search, it never decides it."""
    try:
        scores = measure()
    except Exception as exc:  # noqa: BLE001 - a user model may raise anything; ranking goes on
        log.info("no %s sensitivity proxy (%s: %s); ranking without it", source,
                 type(exc).__name__, exc)
        return {}
    if scores:
        ctx.record_sensitivity(source, scores)
    return scores


def isolated_sensitivity(ctx: TuneContext, config: QuantConfig,
                         ops: Sequence[OpKey]) -> Mapping[OpKey, float]:
    """Per op of ``ops``, its output error when it alone of ``ops`` keeps its option in
    ``config`` and the others take their last fallback (fp32 where allowed).

    Measured in the whole config, an op's output error includes every upstream op's error, so
    the last ops would rank first; alone, each op shows what it adds. No scores (ops keep space
    order, a top-down fallback) where the tuner offers no sensitivity probe.
    """
    if ctx.sensitivity is None:
        return {}
    floats = {op: ctx.space.fallbacks(op)[-1] for op in ops}
    reference = config.with_ops(floats)
    return {op: ctx.sensitivity(reference.with_op(op, config.ops[op])).get(op, 0.0)
            for op in ops}


def random_config(space: TuningSpace, rng: random.Random) -> QuantConfig:
    """A random config: per op a precision uniformly, then one of its options uniformly.

    Drawing the precision first keeps int8's many parameter combinations from drowning the float
    fallbacks, which are what usually decides whether a config meets the goal.
    """
    chosen = {}
    for op, options in space.options.items():
        precision = rng.choice(space.precisions(op))
        chosen[op] = rng.choice([o for o in options if o.precision == precision])
    return QuantConfig(chosen)


class FreshSampler:
    """Draws configs never drawn before, without materialising the space; None once exhausted.

    Rejection sampling while fresh configs are common; after a run of rejections (a nearly
    exhausted small space) the first unseen config in space order, found lazily.
    """

    def __init__(self, space: TuningSpace, seen: set[QuantConfig] | None = None) -> None:
        self.space = space
        self.seen: set[QuantConfig] = set() if seen is None else seen

    @property
    def exhausted(self) -> bool:
        return len(self.seen) >= self.space.size()

    def draw(self, sample: Callable[[], QuantConfig]) -> QuantConfig | None:
        if self.exhausted:
            return None
        for _ in range(_MAX_REJECTIONS):
            config = sample()
            if config not in self.seen:
                self.seen.add(config)
                return config
        config = next((c for c in self.space.iter_configs() if c not in self.seen), None)
        if config is None:  # pragma: no cover - size() said otherwise
            raise TunekitError("the tuning space has fewer configs than its size says")
        self.seen.add(config)
        return config


__all__ = [
    "FreshSampler",
    "Walker",
    "accumulate",
    "fallback_candidates",
    "isolated_sensitivity",
    "probe",
    "random_config",
    "rank",
    "ranked_fallback",
]
