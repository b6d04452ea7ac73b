"""The Strategy plugin interface.

A strategy is a generator of whole-model configs. It never sees the model, the data or the
adaptor, and never decides when to stop: the tuner owns the budget. After each ``yield`` the tuner
has evaluated the config (or answered it from the history) and ``ctx.history.last`` is its trial.

A strategy may also yield a :class:`Batch`: configs that do not depend on each other's results,
which distributed workers evaluate at the same time (see docs/distributed.md).
"""

from __future__ import annotations

import abc
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Self

from tunekit.criterion import AccuracyCriterion
from tunekit.history import History, Trial
from tunekit.space import OpKey, QuantConfig, TuningSpace

#: Per-op sensitivity of a config: a score per op (higher = that op loses more when quantized).
Sensitivity = Callable[[QuantConfig], Mapping[OpKey, float]]

#: Per-op Hessian trace of a loss (``module:attr``, or None for the adaptor's default loss) with
#: respect to the op's weights, per weight (higher = more sensitive to weight perturbation).
HessianTrace = Callable[[str | None], Mapping[OpKey, float]]


@dataclass
class Notes:
    """What a strategy tells the tuner besides its configs, kept per run (never module-global):
    the stage its next proposals belong to, and the per-op sensitivity scores it measured."""

    stage: str | None = None
    #: source (``"mse"``, ``"hessian"``, ``"fallback_impact"``...) → op name → score
    sensitivity: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class TuneContext:
    """Everything a strategy may read. Frozen; ``history`` is updated by the tuner only.
    ``notes`` is the one thing a strategy writes, through :meth:`enter_stage` and
    :meth:`record_sensitivity`."""

    space: TuningSpace
    history: History
    criterion: AccuracyCriterion
    rng: random.Random
    sensitivity: Sensitivity | None = None
    hessian: HessianTrace | None = None
    notes: Notes = field(default_factory=Notes)

    def enter_stage(self, name: str) -> None:
        """Name the stage of the configs proposed from now on; each trial records it (history,
        result and report), so a reader sees which part of the strategy spent each trial."""
        self.notes.stage = name

    def record_sensitivity(self, source: str, scores: Mapping[OpKey | str, float]) -> None:
        """Publish per-op scores (higher = more sensitive) measured by ``source``; the tuner
        keeps the latest per source and writes them to ``result.json["sensitivity"]``."""
        self.notes.sensitivity[source] = {getattr(op, "name", op): float(score)
                                          for op, score in scores.items()}

    def improves(self, trial: Trial, than: Trial | None) -> bool:
        """Whether ``trial`` has a better metric than ``than`` (a failed trial never improves)."""
        if trial.failed or trial.metric is None:
            return False
        if than is None or than.failed or than.metric is None:
            return True
        return self.criterion.better(trial.metric, than.metric)


#: How much of a candidate's metric a proposal's strategy reads (see :attr:`Batch.needed`).
Needed = str | float


class Batch(tuple[QuantConfig, ...]):
    """Independent configs proposed at once, in priority order, with the proposal's signals.

    After the ``yield``, every config of the batch is answered: ``ctx.history.find(config)`` is
    its trial and ``ctx.history.last`` the trial of the batch's last config. Where the tuner stops
    at the first accepted config, the winner is the first accepted config *in batch order*, and
    the history holds the batch's trials up to it only, so one worker and many reach the same
    result (a single process evaluates the batch in order and stops at that same config).
    A plain ``yield config`` is a batch of one with the strategy's default signals.

    The signals travel with the proposal, so a strategy that changes them from stage to stage
    keeps that state in its own generator, never in the instance or the module:

    - ``needed``: how much of each candidate's metric the strategy reads, so the tuner knows when
      it may stop evaluating early (``evaluation.early_reject``): ``"exact"`` (the strategy
      ranks or compares the metrics of failing candidates: always a full evaluation),
      ``"goal"`` (only whether the goal is met), or a metric value ``v`` (whether it meets the
      goal or beats ``v``). A candidate stopped early records the metric's bound (at least as
      good as its true metric) and ``details["early_rejected"] == 1``.
    - ``final``: whether the first accepted config of this proposal is the strategy's answer,
      so the tuner may stop there (``exit_policy.timeout: 0``); False where a later stage
      (a polish) would still improve on it.

    ``None`` (the default) means the strategy's own default (:attr:`Strategy.metric_needed`,
    :attr:`Strategy.first_accept_is_final`), which :func:`as_batch` fills in.
    """

    needed: Needed | None
    final: bool | None

    def __new__(cls, configs: Iterable[QuantConfig] = (), *, needed: Needed | None = None,
                final: bool | None = None) -> Self:
        batch = super().__new__(cls, configs)
        batch.needed, batch.final = needed, final
        return batch

    def with_configs(self, configs: Iterable[QuantConfig]) -> Batch:
        """Other configs under this batch's signals (the part of a batch still to evaluate)."""
        return Batch(configs, needed=self.needed, final=self.final)


def as_batch(proposal: QuantConfig | Batch, strategy: Strategy | None = None) -> Batch:
    """A proposal as a batch whose signals are set (a single config is a batch of one; a signal
    left ``None`` takes ``strategy``'s default); TypeError for anything else (a list or a
    generator of configs is a common slip for a Batch)."""
    if isinstance(proposal, Batch):
        if not all(isinstance(config, QuantConfig) for config in proposal):
            raise TypeError("a Batch holds QuantConfigs only")
        batch = proposal
    elif isinstance(proposal, QuantConfig):
        batch = Batch((proposal,))
    else:
        raise TypeError(f"a strategy yields a QuantConfig or a tunekit.Batch of them, not a "
                        f"{type(proposal).__name__}")
    needed = batch.needed if batch.needed is not None \
        else getattr(strategy, "metric_needed", "exact")
    final = batch.final if batch.final is not None \
        else getattr(strategy, "first_accept_is_final", True)
    return Batch(batch, needed=needed, final=bool(final))


class Strategy(abc.ABC):
    """Base class of tuning strategies (entry-point group ``tunekit.strategies``).

    Constructors take keyword-only parameters and only store them, so a YAML section such as
    ``strategy: {name: basic, order: conservative}`` is exactly the constructor call.
    """

    #: The default of :attr:`Batch.final` for this strategy's proposals: whether the tuner may
    #: stop at the first accepted config (``exit_policy.timeout: 0``). A strategy whose accepted
    #: configs grow more aggressive as it goes (a polish stage) sets False; one whose answer
    #: differs per stage says so per proposal with ``Batch(..., final=...)``.
    first_accept_is_final: bool = True

    #: The default of :attr:`Batch.needed` for this strategy's proposals: ``"exact"`` (always
    #: evaluate in full), ``"goal"`` or a metric value; per proposal with ``Batch(..., needed=)``.
    metric_needed: Needed = "exact"

    @abc.abstractmethod
    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig | Batch]:
        """Yield configs (or :class:`Batch` es of independent configs) to evaluate, best guesses
        first; return when there is nothing left."""
