"""The history journal's file backend: a trial's records in one append, synced to disk once
per trial, off the trial's path.

optuna's journal file appends, flushes (and, from optuna's own backend, reads back) every record
on its own, under the file lock. A trial writes about ten user attributes and one parameter per
op (``<op>.precision``), so a 121-op model cost ~25 ms of appends a trial here, and the fsync
after each trial 3-11 ms more on a loaded machine: a tenth of a small model's trial.
:meth:`TrialSyncedBackend.batched` writes what is recorded inside it in one append, and
:meth:`TrialSyncedBackend.sync` runs the fsync in a background thread while the next trial
runs, after waiting for the previous one.

What a crash can lose is unchanged: records are written and flushed at once (a batch at its
end), so a killed process loses none but those of a batch it was killed inside (its trial is
still RUNNING in the journal, and ``--resume`` runs it again); a machine crash loses at most the
last trial's, since each sync starts only once the one before it has finished.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from optuna.storages.journal import JournalFileBackend


class TrialSyncedBackend(JournalFileBackend):  # type: ignore[misc]
    """optuna's journal file ``path`` under ``lock`` (:mod:`tunekit.journal_lock`), with
    batched appends and a background sync per trial (see the module's docstring)."""

    def __init__(self, path: str, lock: Any) -> None:
        super().__init__(path, lock_obj=lock)
        self._path, self._lock = path, lock
        self._held: list[dict[str, Any]] | None = None
        #: one thread for the syncs, started on the first: a new thread a trial cost as much
        #: as an fsync on a loaded machine (~2 ms: the start waits for the thread to run)
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="tunekit-journal-sync")
        self._syncing: Future[None] | None = None

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self._held is not None:
            self._held.extend(logs)
            return
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        with self._lock, open(self._path, "ab") as f:
            f.write(text.encode("utf-8"))
            f.flush()

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        if self._held is not None:  # inside a batch: nothing of it is written to read yet
            return iter(())
        return super().read_logs(log_number_from)

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """Write the records appended inside in one append when it ends, and read nothing back
        until then (optuna reads the file after each record it writes). optuna applies a record
        to its in-memory study only when it reads it back, so nothing inside may need to read
        what it wrote: a trial's attributes and parameters are only written."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                self.append_logs(held)

    def sync(self) -> None:
        """Make every record written so far durable, in the background: waits for the
        previous sync first. The interpreter waits for the last one at exit."""
        self.wait()
        self._syncing = self._syncer.submit(self._fsync)

    def wait(self) -> None:
        """Wait until the last :meth:`sync` has reached the disk; raise its error, if any."""
        syncing, self._syncing = self._syncing, None
        if syncing is not None:
            syncing.result()

    def _fsync(self) -> None:
        # no lock: fsync flushes the file's pages whoever wrote them, and appends may go on
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
