"""The tuning history persisted in an optuna study, as it happens: :class:`Store`.

Each tunekit trial is one optuna trial: asked (RUNNING) before the candidate is built, told
COMPLETE or FAIL afterwards, with the config as canonical JSON in its user attributes. The storage
is a journal file in the workspace by default (append-only, crash-safe, readable by
``optuna-dashboard``) or any optuna storage URL (:mod:`tunekit.storage`). Nothing is pickled.

Distributed tuning queues, claims, heartbeats and cancels trials here too. This module is the only
one that touches optuna's private attributes (the study's storage, a frozen trial's storage id):
the rest of tunekit asks :class:`Store`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ContextManager

from tunekit.history import Trial
from tunekit.space import PRECISIONS, QuantConfig
from tunekit.storage import journal_backend, rdb_storage

#: User attribute that marks a trial found RUNNING by :meth:`Store.load` (its process died).
INTERRUPTED = "interrupted"

#: User attribute of a queued trial cancelled before it finished (its batch ended at an earlier
#: config, or an earlier run left it queued): no tuning reads its result.
DISCARDED = "tunekit.discarded"


@dataclass(frozen=True)
class StoredRun:
    """What a previous (possibly interrupted) run left in the storage."""

    baseline: Mapping[str, Any] | None
    trials: list[Trial]
    stale: int  # trials found RUNNING: interrupted, marked failed, to be run again


def retried(trials: Iterable[Any]) -> set[int]:
    """Numbers of the optuna trials that were given up for missed heartbeats and queued again
    (optuna's retry copy lists them in its ``retry_history``): their own results, if any came
    late, are not read; the retry's is."""
    return {number for frozen in trials
            for number in frozen.system_attrs.get("retry_history", ())}


def _trial_id(trial: Any) -> int:
    """The storage id of an optuna trial, frozen or running (optuna keeps it private; the
    storage's calls by id need it)."""
    return int(trial._trial_id)


class Store:
    """The optuna study that mirrors a :class:`~tunekit.history.History` on disk."""

    def __init__(self, storage: str, study_name: str, direction: str | None,
                 heartbeat: int | None = None) -> None:
        """Open (``direction`` given: or create) the study ``study_name`` in ``storage``: a
        journal file path, or a database URL (``sqlite:///…``, ``postgresql://…``). With a
        database, ``heartbeat`` (seconds) turns on optuna's heartbeats: running trials record one
        every ``heartbeat`` s, and a trial silent for :data:`tunekit.storage.GRACE` heartbeats is
        failed and re-queued (see :mod:`tunekit.distributed`)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        #: the journal's once-per-trial fsync (a database commits by itself)
        self._sync: Callable[[], None] | None = None
        #: the journal's batch of one trial's records in one append (a database: none)
        self._batched: Callable[[], ContextManager[None]] = contextlib.nullcontext
        if "://" in storage:
            backend = rdb_storage(storage, heartbeat)
        else:
            journal = journal_backend(storage)
            self._sync, self._batched = journal.sync, journal.batched
            backend = optuna.storages.JournalStorage(journal)
        if direction is None:
            self.study = optuna.load_study(storage=backend, study_name=study_name)
        else:
            self.study = optuna.create_study(storage=backend, study_name=study_name,
                                             direction=direction, load_if_exists=True)
        # the storage as the study wraps it (an RDB storage behind optuna's cache): writes by
        # trial id go through it so that the study's own reads see them
        self._storage = self.study._storage
        self._running: Any = None

    def load(self) -> StoredRun:
        """Read what is stored; trials left RUNNING by a crash are marked failed and interrupted.

        Finished trials come back in the order they were evaluated, failed ones too (the same
        config fails the same way, so it is not evaluated again). An interrupted trial is not
        returned, so replay runs its config again. It is marked before it is failed: a crash in
        between leaves it RUNNING, and the next load marks it again.
        """
        TS = self._optuna.trial.TrialState
        baseline = self.study.user_attrs.get("baseline")
        trials, stale = [], 0
        everything = self.study.get_trials(deepcopy=False)
        given_up = retried(everything)
        for frozen in everything:
            attrs = frozen.user_attrs
            if frozen.number in given_up:
                continue
            if frozen.state == TS.RUNNING:
                self._storage.set_trial_user_attr(_trial_id(frozen), INTERRUPTED, True)
                self._storage.set_trial_user_attr(_trial_id(frozen), "error", "interrupted")
                self._storage.set_trial_state_values(_trial_id(frozen), TS.FAIL)
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
        for frozen in self.study.get_trials(deepcopy=False, states=(TS.WAITING,)):
            try:
                # heartbeat first: optuna never fails a RUNNING trial that has no heartbeat
                # at all, so a worker killed right after its claim would hold the trial forever
                self._storage.record_heartbeat(_trial_id(frozen))
                if not self._storage.set_trial_state_values(_trial_id(frozen), TS.RUNNING):
                    continue  # another worker was first
                running = self._optuna.trial.Trial(self.study, _trial_id(frozen))
                # the coordinator may cancel the trial right after the claim (an earlier
                # config of its batch was accepted): then this raises, and the next one is tried
                running.set_user_attr(key, worker)
            except (self._optuna.exceptions.UpdateFinishedTrialError,
                    self._optuna.exceptions.StorageInternalError):
                continue  # finished (cancelled) meanwhile, or SQLite busy: try the next one
            self._running = running
            return dict(frozen.user_attrs)
        return None

    @property
    def claimed_id(self) -> int:
        """The storage id of the trial claimed last (what :meth:`heartbeat` takes)."""
        return _trial_id(self._running)

    @property
    def heartbeat_interval(self) -> int | None:
        """Seconds between two heartbeats of a running trial (None: no heartbeats)."""
        interval: int | None = self._storage.get_heartbeat_interval()
        return interval

    def heartbeat(self, trial_id: int) -> None:
        """Record that the trial of storage id ``trial_id`` is still being evaluated; optuna's
        own heartbeat thread runs only inside ``Study.optimize``, so a worker calls this. Raises
        optuna's ``StorageInternalError`` when the database cannot be reached."""
        self._storage.record_heartbeat(trial_id)

    def discard(self, frozen: Any, why: str) -> bool:
        """Cancel the queued or running optuna trial ``frozen`` (marked :data:`DISCARDED` with
        ``why``, then failed); False if it finished meanwhile: a worker's result stays stored,
        unread."""
        TS, finished = self._optuna.trial.TrialState, self._optuna.exceptions
        try:
            self._storage.set_trial_user_attr(_trial_id(frozen), DISCARDED, why)
            self._storage.set_trial_state_values(_trial_id(frozen), TS.FAIL)
        except finished.UpdateFinishedTrialError:
            return False
        return True

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
        with self._batched():  # the journal: one append, not one per attribute and op
            self._set_params(running, trial.config)
            for key, value in trial.to_attrs().items():
                running.set_user_attr(key, value)
        TS = self._optuna.trial.TrialState
        if trial.failed or trial.metric is None or not math.isfinite(trial.metric):
            self.study.tell(running, state=TS.FAIL)
        else:
            self.study.tell(running, trial.metric)
        if self._sync is not None:  # the journal: one fsync per trial (see journal_backend)
            self._sync()

    def _set_params(self, running: Any, config: QuantConfig) -> None:
        """Each op's precision as a categorical optuna parameter (``<op>.precision``), so
        optuna-dashboard can plot and filter trials by it (user attributes, which hold the whole
        config, it barely shows). Only the history is written: nothing samples them, and replay
        reads the config from the user attributes."""
        distribution = self._optuna.distributions.CategoricalDistribution(PRECISIONS)
        for op, option in config.ops.items():
            self._storage.set_trial_param(_trial_id(running), f"{op.name}.precision",
                                          distribution.to_internal_repr(option.precision),
                                          distribution)
