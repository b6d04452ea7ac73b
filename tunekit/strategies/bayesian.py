"""The bayesian strategy: Gaussian-process Bayesian optimization over the per-op choices.

Uses the ``bayesian-optimization`` package in its ask/tell form: each op is one categorical
parameter (its options), the target is :func:`tunekit.strategies.search.score` (the accuracy goal
first, then the objective). The search starts with a screening design: default int8, then each
op alone at its first fallback (``screening`` ops), before the GP suggests. The design is one
:class:`~tunekit.strategy.Batch` (distributed workers evaluate it at once).

Unlike Intel Neural Compressor's bayesian strategy, which rounds continuous suggestions to
integers and loops on duplicates until its budget is gone (58 evaluations on the digits fallback
case without meeting the goal), a suggestion that was already evaluated is replaced by a fresh
random config, and the strategy returns once every config of the space has been proposed.

The acquisition (upper confidence bound) is maximised over ``candidates`` random points instead of
the package's default random-plus-optimizer search, which takes seconds per suggestion over
categorical parameters; with a few dozen trials the random maximisation is as good and ~100×
cheaper.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from typing import Any

from tunekit.space import QuantConfig
from tunekit.strategies.search import FAILED_SCORE, Encoding, score
from tunekit.strategies.walk import FreshSampler, Walker, random_config
from tunekit.strategy import Batch, Strategy, TuneContext


class BayesianStrategy(Strategy):
    """GP-UCB over categorical per-op options.

    - ``kappa``: exploration weight of the upper confidence bound (> 0).
    - ``candidates``: random points over which the acquisition is maximised per suggestion (≥ 1).
    - ``screening``: ops in the screening design (≥ 0).
    - ``batch``: GP suggestions per :class:`~tunekit.strategy.Batch` after the screening (≥ 1),
      for distributed workers. With more than one, each suggestion is registered with a
      constant lie (the worst score so far) on a copy of the GP before the next one is asked
      for ("constant liar", Ginsbourger et al. 2010), so a batch spreads out instead of asking
      k times for the same point; the real scores replace the lies once the batch is answered.
      1 (the default) is the sequential search.
    """

    def __init__(self, *, kappa: float = 2.576, candidates: int = 1000,
                 screening: int = 8, batch: int = 1) -> None:
        if not kappa > 0:
            raise ValueError(f"kappa must be > 0, got {kappa!r}")
        if not isinstance(candidates, int) or candidates < 1:
            raise ValueError(f"candidates must be an integer ≥ 1, got {candidates!r}")
        if not isinstance(screening, int) or screening < 0:
            raise ValueError(f"screening must be an integer ≥ 0, got {screening!r}")
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an integer ≥ 1, got {batch!r}")
        self.kappa = kappa
        self.candidates = candidates
        self.screening = screening
        self.batch = batch

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig | Batch]:
        encoding = Encoding(ctx.space)
        optimizer = _optimizer(encoding, self.kappa, self.candidates, ctx.rng.randrange(2**31))
        walker, sampler = Walker(ctx), FreshSampler(ctx.space)
        screening = _screening_design(ctx, self.screening)
        sampler.seen.update(screening)
        # the screening points do not depend on each other: one batch (distributed workers
        # evaluate them at once), registered in design order as if evaluated one by one
        trials = yield from walker.visit_batch(screening)
        for config, trial in zip(screening, trials):
            _register(optimizer, encoding.params(config), score(ctx, trial))
        if self.batch > 1:
            while configs := _constant_liar(ctx, optimizer, encoding, sampler, self.batch):
                trials = yield from walker.visit_batch(configs)
                for config, trial in zip(configs, trials):
                    _register(optimizer, encoding.params(config), score(ctx, trial))
            return
        config: QuantConfig | None = _suggestion(ctx, optimizer, encoding, sampler)
        while config is not None:
            trial = yield from walker.visit(config)
            _register(optimizer, encoding.params(config), score(ctx, trial))
            config = _suggestion(ctx, optimizer, encoding, sampler)


def _suggestion(ctx: TuneContext, optimizer: Any, encoding: Encoding,
                sampler: FreshSampler) -> QuantConfig | None:
    """The GP's suggestion, or a fresh random config where it suggests a seen one (None once
    every config was proposed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suggestion = encoding.config(optimizer.suggest())
    if suggestion in sampler.seen:
        return sampler.draw(lambda: random_config(ctx.space, ctx.rng))
    sampler.seen.add(suggestion)
    return suggestion


def _constant_liar(ctx: TuneContext, optimizer: Any, encoding: Encoding, sampler: FreshSampler,
                   size: int) -> list[QuantConfig]:
    """Up to ``size`` new configs to evaluate together: each suggestion of a copy of the GP is
    registered there with the worst score observed so far before the next is asked for."""
    liar = copy.deepcopy(optimizer)
    lie = min(optimizer.space.target) if len(optimizer.space) else FAILED_SCORE
    configs: list[QuantConfig] = []
    while len(configs) < size:
        config = _suggestion(ctx, liar, encoding, sampler)
        if config is None:
            break
        configs.append(config)
        _register(liar, encoding.params(config), float(lie))
    return configs


def _register(optimizer: Any, params: dict[str, str], target: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.register(params, target)


def _screening_design(ctx: TuneContext, size: int) -> list[QuantConfig]:
    """Default int8, then each op alone at its first fallback (up to ``size`` ops, the most
    sensitive first when the adaptor can tell): the one-factor-at-a-time points give the GP every
    op's main effect before it extrapolates, where a cold start spends its budget near default
    int8 (the digits case: 1 of 5 ops must leave int8, 2 of its 14 options do)."""
    default = ctx.space.default()
    ops = [op for op in ctx.space.ops if ctx.space.fallbacks(op)
           and default.precision_of(op) == "int8"]
    if ctx.sensitivity is not None and len(ops) > size:
        scores = ctx.sensitivity(default)
        ops.sort(key=lambda op: -scores.get(op, 0.0))
    return [default] + [default.with_op(op, ctx.space.fallbacks(op)[0]) for op in ops[:size]]


def _optimizer(encoding: Encoding, kappa: float, candidates: int, seed: int) -> Any:
    from bayes_opt import BayesianOptimization, acquisition

    class SampledUCB(acquisition.UpperConfidenceBound):  # type: ignore[misc]
        """UCB maximised over random points only (see the module docstring)."""

        def suggest(self, gp: Any, target_space: Any, n_random: int = 0, n_smart: int = 0,
                    fit_gp: bool = True, random_state: Any = None) -> Any:
            return super().suggest(gp, target_space, n_random=candidates, n_smart=0,
                                   fit_gp=fit_gp, random_state=random_state)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Non-float parameters are experimental"
        optimizer = BayesianOptimization(
            f=None, pbounds=encoding.choices(), verbose=0, random_state=seed,
            acquisition_function=SampledUCB(kappa=kappa, random_state=seed))
    # one kernel fit per suggestion instead of six: restarts buy little with one-hot inputs
    optimizer.set_gp_params(n_restarts_optimizer=0)
    return optimizer


__all__ = ["BayesianStrategy"]
