"""The journal backend: a trial's records in one append, and the per-trial fsync off the trial's
path (tunekit/journal_backend.py)."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest

from tunekit.history import Trial, TrialState
from tunekit.store import Store
from tunekit.journal_backend import TrialSyncedBackend
from tunekit.journal_lock import lock_for
from tunekit.space import OpConfig, OpKey, QuantConfig


def config(ops: int) -> QuantConfig:
    int8 = OpConfig("int8", "static", "sym", "per_channel", "minmax")
    return QuantConfig({OpKey(f"op{i}", "Linear"): int8 for i in range(ops)})


def test_a_batch_is_written_in_one_append_when_it_ends(tmp_path: Path) -> None:
    path = str(tmp_path / "history.log")
    backend = TrialSyncedBackend(path, lock_for(path))
    backend.append_logs([{"op_code": 0, "n": 0}])
    size = os.path.getsize(path)
    with backend.batched():
        backend.append_logs([{"op_code": 0, "n": 1}])
        backend.append_logs([{"op_code": 0, "n": 2}])
        assert os.path.getsize(path) == size  # nothing written yet
        assert list(backend.read_logs(1)) == []  # and nothing read back
    assert [log["n"] for log in backend.read_logs(0)] == [0, 1, 2]


def test_store_finish_appends_once_whatever_the_op_count(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    appends: list[int] = []  # the records of each call that wrote to the file
    original = TrialSyncedBackend.append_logs

    def counted(self: TrialSyncedBackend, logs: list[dict]) -> None:
        size = os.path.getsize(path)
        original(self, logs)
        if os.path.getsize(path) != size:
            appends.append(len(logs))

    monkeypatch.setattr(TrialSyncedBackend, "append_logs", counted)
    path = tmp_path / "history.log"
    store = Store(str(path), "study", "maximize")
    wide = config(121)
    store.begin(wide)
    appends.clear()
    store.finish(Trial(0, wide, TrialState.COMPLETE, metric=0.9, objective=1.0, accepted=True,
                       duration_s=0.5, details={"size": 3.0}))
    # one append for the attributes and the 121 op parameters, one for the final state
    assert len(appends) == 2 and appends[0] > 121
    stored = Store(str(path), "study", None).load()
    assert [(t.config, t.metric, dict(t.details)) for t in stored.trials] == \
        [(wide, 0.9, {"size": 3.0})]
    frozen = optuna.load_study(study_name="study", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(path)))).trials[0]
    assert frozen.state == optuna.trial.TrialState.COMPLETE and len(frozen.params) == 121


def test_sync_runs_in_the_background_and_a_failed_one_is_raised_by_the_next(
        tmp_path: Path) -> None:
    path = str(tmp_path / "history.log")
    backend = TrialSyncedBackend(path, lock_for(path))
    backend.append_logs([{"op_code": 0}])
    backend.sync()
    backend.wait()  # synced: no error
    os.remove(path)  # the next sync cannot open the journal
    backend.sync()
    with pytest.raises(FileNotFoundError):
        backend.sync()  # waits for the failed one first
