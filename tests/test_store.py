"""The optuna Store: what earlier versions wrote still loads, and the queue operations that
distributed tuning asks of it (claim, cancel, heartbeat) behave under the races they meet."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import optuna
import pytest

from tunekit.history import Trial, TrialState
from tunekit.space import OpConfig, OpKey, QuantConfig
from tunekit.storage import GRACE, fail_stale
from tunekit.store import DISCARDED, INTERRUPTED, Store

#: A journal written by tunekit 0.1 (history.py's Store, before store.py): a baseline, a study
#: attribute, one complete and one failed trial, and one left RUNNING by a "killed" process.
JOURNAL_0_1 = Path(__file__).parent / "data" / "history-0.1.log"

CONV, FC = OpKey("conv", "Conv2d"), OpKey("fc", "Linear")
INT8 = OpConfig("int8", "static", "asym", "per_channel", "minmax")
A, B = QuantConfig({CONV: INT8, FC: INT8}), QuantConfig({CONV: OpConfig("fp32"), FC: INT8})
C = QuantConfig({CONV: INT8, FC: OpConfig("fp32")})


def _queue(tmp_path: Path, count: int, heartbeat: int = 10) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'h.db'}", "queue", "maximize", heartbeat=heartbeat)
    for number in range(count):
        store.study.enqueue_trial({}, user_attrs={"n": number})
    return store


def test_a_journal_written_by_version_0_1_resumes(tmp_path: Path) -> None:
    journal = tmp_path / "history.log"
    shutil.copy(JOURNAL_0_1, journal)
    stored = Store(str(journal), "tunekit", "maximize").load()
    assert stored.baseline == {"metric": 0.9, "performance": 0.01} and stored.stale == 1
    assert [(t.number, t.config, t.state, t.metric, t.stage) for t in stored.trials] == [
        (0, A, TrialState.COMPLETE, 0.8, "default"), (1, B, TrialState.FAILED, None, "fallback")]
    assert stored.trials[0].details == {"performance": 0.002}
    store = Store(str(journal), "tunekit", "maximize")  # resume: the interrupted config again
    store.begin(C)
    store.finish(Trial(3, C, TrialState.COMPLETE, metric=0.85))
    again = Store(str(journal), "tunekit", "maximize")
    assert again.load().stale == 0 and [t.config for t in again.load().trials] == [A, B, C]
    interrupted = [t for t in again.study.get_trials() if t.user_attrs.get(INTERRUPTED)]
    assert [t.state for t in interrupted] == [optuna.trial.TrialState.FAIL]


def test_a_claim_cancelled_right_after_it_moves_on_to_the_next_queued_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The coordinator may cancel a queued trial just after a worker moved it to RUNNING (an
    earlier config of the batch was accepted); the claim then takes the next one instead of
    failing the worker. The cancellation is made to land in exactly that gap."""
    store = _queue(tmp_path, 2)
    real = optuna.storages.RDBStorage.set_trial_state_values
    cancelled: list[int] = []

    def claim_then_cancel(self, trial_id, state, values=None):  # type: ignore[no-untyped-def]
        moved = real(self, trial_id, state, values)
        if not cancelled:  # the coordinator's cancellation, between the claim and its tag
            cancelled.append(trial_id)
            real(self, trial_id, optuna.trial.TrialState.FAIL)
        return moved

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", claim_then_cancel)
    attrs = store.claim("worker", "w1")
    assert attrs is not None and attrs["n"] == 1 and len(cancelled) == 1


def test_discard_cancels_an_unfinished_trial_but_not_a_finished_one(tmp_path: Path) -> None:
    store = _queue(tmp_path, 2)
    assert store.claim("worker", "w1") == {"n": 0}
    store.finish_claimed(Trial(0, A, TrialState.COMPLETE, metric=0.8))
    finished, queued = store.study.get_trials(deepcopy=False)
    assert store.discard(queued, "cancelled: test") is True
    assert store.discard(finished, "too late") is False  # a worker's result stays stored
    finished, queued = store.study.get_trials(deepcopy=False)
    assert queued.state == optuna.trial.TrialState.FAIL
    assert queued.user_attrs[DISCARDED] == "cancelled: test"
    assert finished.state == optuna.trial.TrialState.COMPLETE and DISCARDED not in \
        finished.user_attrs
    assert store.claim("worker", "w2") is None  # nothing left queued


def test_heartbeats_keep_a_claimed_trial_and_their_absence_requeues_it(tmp_path: Path) -> None:
    store = _queue(tmp_path, 1, heartbeat=1)
    assert store.heartbeat_interval == 1
    assert store.claim("worker", "w1") == {"n": 0}
    trial_id = store.claimed_id
    time.sleep(GRACE + 1.5)
    store.heartbeat(trial_id)
    fail_stale(store.study)
    assert [t.state for t in store.study.get_trials()] == [optuna.trial.TrialState.RUNNING]
    time.sleep(GRACE + 1.5)  # silent past the grace period (SQLite's clock counts whole
    # seconds): failed, and a copy queued
    fail_stale(store.study)
    states = [t.state for t in store.study.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
