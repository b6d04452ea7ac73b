"""A lock for the history journal that a killed process cannot leave behind.

optuna's journal locks (``JournalFileSymlinkLock``, ``JournalFileOpenLock``) are files that exist
while the lock is held. A ``kill -9`` during an append leaves the file, and the next process waits
out a 30 s grace period before it breaks the lock. ``fcntl.flock`` locks belong to an open file
description, so the kernel releases them when the holder dies: ``--resume`` starts at once.
Where ``fcntl`` is missing (Windows), optuna's own open-file lock is used.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Self

from optuna.storages.journal import JournalFileOpenLock

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".flock"


class FlockLock:
    """An exclusive ``flock`` on ``<journal>.flock``; usable as optuna's lock object (it only
    calls ``acquire``/``release``; its base class is not public) and as a context manager."""

    def __init__(self, journal: str) -> None:
        self._path = journal + SUFFIX
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class _OpenLock(JournalFileOpenLock):
    """optuna's lock with the context-manager protocol :func:`lock_for` promises."""

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_for(journal: str) -> FlockLock | _OpenLock:
    """The lock guarding ``journal``: ``flock`` where the OS has it."""
    return FlockLock(journal) if fcntl is not None else _OpenLock(journal)
