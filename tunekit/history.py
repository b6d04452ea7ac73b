"""Trials and the tuning history, persisted in an optuna storage as they happen.

Each tunekit trial is one optuna trial: asked (RUNNING) before the candidate is built, told
COMPLETE or FAIL afterwards, with the config as canonical JSON in its user attributes. The storage
is a journal file in the workspace by default (append-only, crash-safe, readable by
``optuna-dashboard``) or any optuna storage URL. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tunekit.space import PRECISIONS, QuantConfig


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


@dataclass(frozen=True)
class StoredRun:
    """What a previous (possibly interrupted) run left in the storage."""

    baseline: Mapping[str, Any] | None
    trials: list[Trial]
    stale: int  # trials found RUNNING: interrupted, marked failed, to be run again


#: User attribute that marks a trial found RUNNING by :meth:`Store.load` (its process died).
INTERRUPTED = "interrupted"

#: User attribute of a queued trial cancelled before it finished (its batch ended at an earlier
#: config, or an earlier run left it queued): no tuning reads its result.
DISCARDED = "tunekit.discarded"


def retried(trials: Iterable[Any]) -> set[int]:
    """Numbers of the optuna trials that were given up for missed heartbeats and queued again
    (optuna's retry copy lists them in its ``retry_history``): their own results, if any came
    late, are not read; the retry's is."""
    return {number for frozen in trials
            for number in frozen.system_attrs.get("retry_history", ())}

#: Heartbeats a running trial may miss before it is failed and re-queued.
GRACE = 3


def rdb_storage(url: str, heartbeat: int | None = None) -> Any:
    """optuna's RDB storage for ``url``; with ``heartbeat``, a trial silent for ``GRACE``
    heartbeats is failed by :func:`optuna.storages.fail_stale_trials` and a WAITING copy of it
    (same user attributes, so the same config and task) is queued by optuna's
    ``RetryHeartbeatStaleTrialCallback``."""
    import optuna

    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):  # several local processes write one file: wait, do not fail
        engine["connect_args"] = {"timeout": 60}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats
        kwargs: dict[str, Any] = {}
        if heartbeat is not None:
            kwargs = {"heartbeat_interval": heartbeat, "grace_period": GRACE * heartbeat,
                      "heartbeat_stale_trial_callback":
                          optuna.storages.RetryHeartbeatStaleTrialCallback()}
        return _create_rdb(_with_driver(url), engine, kwargs)


def _create_rdb(url: str, engine: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """``RDBStorage(url)``, retried when it loses the race to create optuna's tables in a new
    database: a coordinator and its workers starting together all try (measured here: 2 of 4
    processes failed with a duplicate-key error on a fresh PostgreSQL database)."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(4):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, **kwargs)
        except (IntegrityError, ProgrammingError):
            time.sleep(0.2 * (attempt + 1))
    return optuna.storages.RDBStorage(url, engine_kwargs=engine, **kwargs)


def fail_stale(study: Any) -> None:
    """Fail the running trials whose heartbeats stopped and queue them again (optuna's
    ``fail_stale_trials`` with the retry callback of :func:`rdb_storage`); any process may call
    it, optuna makes sure each trial is failed once."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 reads a bare
    ``postgresql://`` as psycopg 3, while ``tunekit[distributed]`` installs psycopg2-binary."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    return url


def _journal_storage(path: str) -> Any:
    import optuna

    from tunekit.journal_backend import TrialSyncedBackend
    from tunekit.journal_lock import lock_for

    lock = lock_for(path)
    with lock:
        repair_journal(path)
        check_journal(path)
    return optuna.storages.JournalStorage(TrialSyncedBackend(path, lock))


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

    def __init__(self, storage: str, study_name: str, direction: str | None,
                 heartbeat: int | None = None) -> None:
        """Open (``direction`` given: or create) the study ``study_name`` in ``storage``: a
        journal file path, or a database URL (``sqlite:///…``, ``postgresql://…``). With a
        database, ``heartbeat`` (seconds) turns on optuna's heartbeats: running trials record one
        every ``heartbeat`` s, and a trial silent for :data:`GRACE` heartbeats is failed and
        re-queued (see :mod:`tunekit.distributed`)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        backend = rdb_storage(storage, heartbeat) if "://" in storage \
            else _journal_storage(storage)
        if direction is None:
            self.study = optuna.load_study(storage=backend, study_name=study_name)
        else:
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
        everything = self.study.get_trials(deepcopy=False)
        given_up = retried(everything)
        for frozen in everything:
            attrs = frozen.user_attrs
            if frozen.number in given_up:
                continue
            if frozen.state == TS.RUNNING:
                storage.set_trial_user_attr(frozen._trial_id, INTERRUPTED, True)
                storage.set_trial_user_attr(frozen._trial_id, "error", "interrupted")
                storage.set_trial_state_values(frozen._trial_id, TS.FAIL)
                stale += 1
            elif frozen.state in (TS.COMPLETE, TS.FAIL) and "state" in attrs \
                    and not attrs.get(INTERRUPTED) and not attrs.get(DISCARDED):
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

    def claim(self, key: str, worker: str) -> dict[str, Any] | None:
        """Claim the oldest queued (WAITING) trial for ``worker`` (stored under ``key``) with
        optuna's own atomic WAITING → RUNNING update, as ``Study.ask`` pops; its user
        attributes, or None if nothing is queued."""
        TS = self._optuna.trial.TrialState
        storage = self.study._storage
        for frozen in self.study.get_trials(deepcopy=False, states=(TS.WAITING,)):
            try:
                # heartbeat first: optuna never fails a RUNNING trial that has no heartbeat
                # at all, so a worker killed right after its claim would hold the trial forever
                storage.record_heartbeat(frozen._trial_id)
                if not storage.set_trial_state_values(frozen._trial_id, TS.RUNNING):
                    continue  # another worker was first
                running = self._optuna.trial.Trial(self.study, frozen._trial_id)
                # the coordinator may cancel the trial right after the claim (an earlier
                # config of its batch was accepted): then this raises, and the next one is tried
                running.set_user_attr(key, worker)
            except (self._optuna.exceptions.UpdateFinishedTrialError,
                    self._optuna.exceptions.StorageInternalError):
                continue  # finished (cancelled) meanwhile, or SQLite busy: try the next one
            self._running = running
            return dict(frozen.user_attrs)
        return None

    def _set_params(self, running: Any, config: QuantConfig) -> None:
        """Each op's precision as a categorical optuna parameter (``<op>.precision``), so
        optuna-dashboard can plot and filter trials by it (user attributes, which hold the whole
        config, it barely shows). Only the history is written: nothing samples them, and replay
        reads the config from the user attributes."""
        distribution = self._optuna.distributions.CategoricalDistribution(PRECISIONS)
        storage = self.study._storage
        for op, option in config.ops.items():
            storage.set_trial_param(running._trial_id, f"{op.name}.precision",
                                    distribution.to_internal_repr(option.precision),
                                    distribution)

    @property
    def claimed_id(self) -> int:
        """The storage id of the trial claimed last."""
        return int(self._running._trial_id)

    def finish_claimed(self, trial: Trial) -> bool:
        """:meth:`finish` a claimed trial; False if it was failed meanwhile (heartbeats lost or
        cancelled by the coordinator): the result is dropped, the retry answers instead."""
        try:
            self.finish(trial)
        except self._optuna.exceptions.UpdateFinishedTrialError:
            self._running = None
            return False
        return True

    def finish(self, trial: Trial) -> None:
        running, self._running = self._running, None
        backend = getattr(self.study._storage, "_backend", None)
        with getattr(backend, "batched", contextlib.nullcontext)():  # the journal: one append
            self._set_params(running, trial.config)
            for key, value in trial.to_attrs().items():
                running.set_user_attr(key, value)
        TS = self._optuna.trial.TrialState
        if trial.failed or trial.metric is None or not math.isfinite(trial.metric):
            self.study.tell(running, state=TS.FAIL)
        else:
            self.study.tell(running, trial.metric)
        sync = getattr(backend, "sync", None)
        if sync is not None:  # the journal: one fsync per trial (see tunekit.journal_backend)
            sync()
