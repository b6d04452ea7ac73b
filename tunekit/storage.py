"""The optuna storages a :class:`tunekit.store.Store` opens: the journal file and databases.

The journal (the default, a file in the workspace) is append-only and crash-safe: it is repaired
and checked when opened, locked with a lock a killed process cannot leave behind
(:mod:`tunekit.journal_lock`), and synced to disk once per finished trial. A database URL gets
optuna's RDB storage with the installed PostgreSQL driver, heartbeats when asked, and retries
around the race to create optuna's tables. Only :mod:`tunekit.store` uses these factories;
:func:`storage_label` and :func:`storage_error` name a storage for people (the tuner's
``--storage`` and ``tunekit worker``): a URL's password hidden, and what to do when it fails.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Any

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


def journal_backend(path: str) -> Any:
    """The journal file ``path`` as an optuna journal backend, repaired and checked first; its
    ``sync()`` makes the records written so far durable (the store calls it once per trial, and
    it runs in the background) and ``batched()`` writes a trial's records in one append
    (:mod:`tunekit.journal_backend`)."""
    from tunekit.journal_backend import TrialSyncedBackend
    from tunekit.journal_lock import lock_for

    lock = lock_for(path)
    with lock:
        repair_journal(path)
        check_journal(path)
    return TrialSyncedBackend(path, lock)


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


def storage_label(storage: str) -> str:
    """``storage`` for logs and messages: a URL's password hidden."""
    if "://" not in storage:
        return storage
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return storage.split("://")[0] + "://…"


def storage_error(storage: str, exc: Exception) -> str:
    """What went wrong opening ``storage`` and what to do, per kind of failure."""
    where, kind = storage_label(storage), type(exc).__name__
    if kind == "ArgumentError" or kind == "NoSuchModuleError":
        return (f"{where!r} is not a storage URL tunekit can open ({exc}); give --storage as "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, sqlite:///PATH, or a file path "
                "for a journal")
    if kind == "OperationalError":
        return (f"cannot reach the database {where!r} given by --storage ({exc}); check that "
                "the server runs and accepts connections from this machine, and the host, "
                "port, user, password and database name")
    if kind in ("ImportError", "ModuleNotFoundError"):
        return (f"the driver for {where!r} is missing ({exc}); pip install "
                "'tunekit[distributed]' (psycopg2-binary) for PostgreSQL")
    return f"cannot open the history storage {where!r}: {kind}: {exc}"
