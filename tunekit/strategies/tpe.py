"""The tpe strategy: optuna's Tree-structured Parzen Estimator over the per-op choices.

Accuracy is a constraint (the goal's margin, :func:`tunekit.strategies.search.margin`) and the
objective is the value to minimize, so TPE models "which configs meet the goal" and "which of
those are fast" separately (optuna's constrained TPE). Each op is one categorical parameter; the
study lives in memory and starts with default int8.

A suggestion that was already evaluated is told its known result (no evaluation) so TPE learns
from it; after several such repeats in a row a fresh random config is enqueued instead, and the
strategy returns once every config of the space has been proposed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tunekit.history import Trial
from tunekit.space import QuantConfig
from tunekit.strategies.search import Encoding, margin
from tunekit.strategies.walk import FreshSampler, Walker, random_config
from tunekit.strategy import Strategy, TuneContext

#: Repeated suggestions in a row after which a fresh random config is enqueued.
MAX_REPEATED_SUGGESTIONS = 8


class TPEStrategy(Strategy):
    """Constrained TPE (optuna).

    - ``startup``: random trials before TPE's model takes over (optuna's ``n_startup_trials``).
    """

    def __init__(self, *, startup: int = 5) -> None:
        if not isinstance(startup, int) or startup < 0:
            raise ValueError(f"startup must be an integer ≥ 0, got {startup!r}")
        self.startup = startup

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        encoding = Encoding(ctx.space)
        distributions = {key: optuna.distributions.CategoricalDistribution(values)
                         for key, values in encoding.choices().items()}
        sampler = optuna.samplers.TPESampler(seed=ctx.rng.randrange(2**31),
                                             n_startup_trials=self.startup)
        study = optuna.create_study(sampler=sampler, direction="minimize")
        study.enqueue_trial(encoding.params(ctx.space.default()))
        walker, fresh = Walker(ctx), FreshSampler(ctx.space)
        repeats = 0
        while True:
            asked = study.ask(distributions)
            config = encoding.config(asked.params)
            repeated = config in walker.trials
            trial = yield from walker.visit(config)
            fresh.seen.add(config)
            _tell(study, asked, ctx, trial)
            repeats = repeats + 1 if repeated else 0
            if repeats >= MAX_REPEATED_SUGGESTIONS or fresh.exhausted:
                new = fresh.draw(lambda: random_config(ctx.space, ctx.rng))
                if new is None:
                    return
                study.enqueue_trial(encoding.params(new))
                repeats = 0


def _tell(study: Any, asked: Any, ctx: TuneContext, trial: Trial) -> None:
    import optuna

    past = margin(ctx, trial)
    if past is None:
        study.tell(asked, state=optuna.trial.TrialState.FAIL)
        return
    asked.set_constraint("accuracy", -past)  # optuna: ≤ 0 is feasible
    study.tell(asked, trial.objective if trial.objective is not None else 1.0)


__all__ = ["TPEStrategy"]
