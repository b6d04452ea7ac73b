"""Trials and the tuning history that strategies read.

A :class:`Trial` is the outcome of one config; the :class:`History` holds a tuning's trials in
order. Both are plain, frozen data with no storage behind them, so a strategy (and its test) needs
neither optuna nor a file: :mod:`tunekit.store` persists them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tunekit.space import QuantConfig


class TrialState(str, enum.Enum):
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class Trial:
    """The outcome of evaluating one config. Frozen: strategies get it read-only."""

    number: int
    config: QuantConfig
    state: TrialState
    metric: float | None = None
    objective: float | None = None
    accepted: bool = False
    error: str | None = None
    duration_s: float = 0.0
    details: Mapping[str, float] = field(default_factory=dict)
    #: the strategy's stage that proposed it (:meth:`TuneContext.enter_stage`), if it names one
    stage: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @property
    def failed(self) -> bool:
        return self.state is TrialState.FAILED

    def to_attrs(self) -> dict[str, Any]:
        """The user attributes stored on the optuna trial (JSON-safe)."""
        return {"config": self.config.to_json(), "state": self.state.value, "metric": self.metric,
                "objective": self.objective, "accepted": self.accepted, "error": self.error,
                "duration_s": round(self.duration_s, 4), "details": dict(self.details),
                "stage": self.stage}

    @classmethod
    def from_attrs(cls, number: int, attrs: Mapping[str, Any]) -> Trial:
        return cls(number=number, config=QuantConfig.from_json(attrs["config"]),
                   state=TrialState(attrs["state"]), metric=_opt_float(attrs.get("metric")),
                   objective=_opt_float(attrs.get("objective")), accepted=bool(attrs.get("accepted")),
                   error=attrs.get("error"), duration_s=float(attrs.get("duration_s") or 0.0),
                   details=attrs.get("details") or {}, stage=attrs.get("stage"))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


class History:
    """The trials of one tuning in order, plus the result of the last proposal.

    Strategies read it through :class:`tunekit.strategy.TuneContext`; only the tuner appends.
    ``last`` is the trial answering the most recent proposal — a fresh trial, or the earlier trial
    of an identical config (answered from the history, not evaluated again).
    """

    def __init__(self, baseline_metric: float | None = None) -> None:
        self.baseline_metric = baseline_metric
        self._trials: list[Trial] = []
        self._by_config: dict[QuantConfig, Trial] = {}
        self._last: Trial | None = None

    def __len__(self) -> int:
        return len(self._trials)

    def __iter__(self) -> Iterator[Trial]:
        return iter(self._trials)

    @property
    def trials(self) -> tuple[Trial, ...]:
        return tuple(self._trials)

    @property
    def last(self) -> Trial:
        if self._last is None:
            raise LookupError("no config has been proposed yet")
        return self._last

    def find(self, config: QuantConfig) -> Trial | None:
        """The trial of ``config`` if it was evaluated before (failed ones too: same config,
        same failure)."""
        return self._by_config.get(config)

    def accepted(self) -> list[Trial]:
        return [t for t in self._trials if t.accepted]

    def record(self, trial: Trial) -> None:
        """Append a fresh trial (tuner only)."""
        self._trials.append(trial)
        self._by_config.setdefault(trial.config, trial)
        self._last = trial

    def answer(self, trial: Trial) -> None:
        """Make an earlier trial the answer to the latest proposal (tuner only)."""
        self._last = trial
