"""Trials and the tuning history, persisted in an optuna storage as they happen.

Each tunekit trial is one optuna trial: asked (RUNNING) before the candidate is built, told
COMPLETE or FAIL afterwards, with the config as canonical JSON in its user attributes. The storage
is a journal file in the workspace by default (append-only, crash-safe, readable by
``optuna-dashboard``) or any optuna storage URL. Nothing is pickled.
"""

from __future__ import annotations

import enum
import json
import math
import os
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @property
    def failed(self) -> bool:
        return self.state is TrialState.FAILED

    def to_attrs(self) -> dict[str, Any]:
        """The user attributes stored on the optuna trial (JSON-safe)."""
        return {"config": self.config.to_json(), "state": self.state.value, "metric": self.metric,
                "objective": self.objective, "accepted": self.accepted, "error": self.error,
                "duration_s": round(self.duration_s, 4), "details": dict(self.details)}

    @classmethod
    def from_attrs(cls, number: int, attrs: Mapping[str, Any]) -> Trial:
        return cls(number=number, config=QuantConfig.from_json(attrs["config"]),
                   state=TrialState(attrs["state"]), metric=_opt_float(attrs.get("metric")),
                   objective=_opt_float(attrs.get("objective")), accepted=bool(attrs.get("accepted")),
                   error=attrs.get("error"), duration_s=float(attrs.get("duration_s") or 0.0),
                   details=attrs.get("details") or {})


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


@dataclass(frozen=True)
class StoredRun:
    """What a previous (possibly interrupted) run left in the storage."""

    baseline: Mapping[str, Any] | None
    trials: list[Trial]
    stale: int  # trials found RUNNING: interrupted, marked failed, to be run again


#: User attribute that marks a trial found RUNNING by :meth:`Store.load` (its process died).
INTERRUPTED = "interrupted"


def _journal_storage(path: str) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from tunekit.journal_lock import lock_for

    lock = lock_for(path)
    with lock:
        repair_journal(path)
        check_journal(path)
    return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=lock))


def check_journal(path: str) -> None:
    """Fail with the line number when a record in the journal is not JSON (edited or damaged
    by hand or by a disk error): optuna's own error names neither the file nor the line."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                json.loads(line)
            except ValueError:
                raise ValueError(
                    f"the history {path} is damaged at line {number} (not a JSON record). It is "
                    "left as it is: move it away to start a new tuning, or delete line "
                    f"{number} and what follows to --resume from the trials before it") from None


def repair_journal(path: str) -> bool:
    """Cut a torn last line (a write cut short by a crash) off the journal; True if one was.

    optuna skips a torn *last* line when reading, but its next append would glue a new record
    onto it, and from then on every read fails. The torn record was never acknowledged, so
    dropping it loses nothing that was committed.
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return False
    with open(path, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return False
        f.truncate(data.rfind(b"\n") + 1)
        f.flush()
        os.fsync(f.fileno())
    return True


class Store:
    """The optuna study that mirrors a :class:`History` on disk."""

    def __init__(self, storage: str, study_name: str, direction: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        backend = storage if "://" in storage else _journal_storage(storage)
        self.study = optuna.create_study(storage=backend, study_name=study_name,
                                         direction=direction, load_if_exists=True)
        self._running: Any = None

    def load(self) -> StoredRun:
        """Read what is stored; trials left RUNNING by a crash are marked failed and interrupted.

        Finished trials come back in the order they were evaluated, failed ones too (the same
        config fails the same way, so it is not evaluated again). An interrupted trial is not
        returned, so replay runs its config again. It is marked before it is failed: a crash in
        between leaves it RUNNING, and the next load marks it again.
        """
        TS = self._optuna.trial.TrialState
        storage = self.study._storage
        baseline = self.study.user_attrs.get("baseline")
        trials, stale = [], 0
        for frozen in self.study.get_trials(deepcopy=False):
            attrs = frozen.user_attrs
            if frozen.state == TS.RUNNING:
                storage.set_trial_user_attr(frozen._trial_id, INTERRUPTED, True)
                storage.set_trial_user_attr(frozen._trial_id, "error", "interrupted")
                storage.set_trial_state_values(frozen._trial_id, TS.FAIL)
                stale += 1
            elif frozen.state in (TS.COMPLETE, TS.FAIL) and "state" in attrs \
                    and not attrs.get(INTERRUPTED):
                trials.append(Trial.from_attrs(frozen.number, attrs))
        return StoredRun(baseline, trials, stale)

    def save_baseline(self, baseline: Mapping[str, Any]) -> None:
        self.study.set_user_attr("baseline", json.loads(json.dumps(baseline)))

    def set_info(self, key: str, value: Any) -> None:
        self.study.set_user_attr(key, value)

    def begin(self, config: QuantConfig) -> int:
        """Persist a RUNNING trial before it is evaluated; returns its storage number."""
        self._running = self.study.ask()
        self._running.set_user_attr("config", config.to_json())
        return int(self._running.number)

    def finish(self, trial: Trial) -> None:
        running, self._running = self._running, None
        for key, value in trial.to_attrs().items():
            running.set_user_attr(key, value)
        TS = self._optuna.trial.TrialState
        if trial.failed or trial.metric is None or not math.isfinite(trial.metric):
            self.study.tell(running, state=TS.FAIL)
        else:
            self.study.tell(running, trial.metric)
