"""A history storage named for people: a URL's password hidden, and what to do when it cannot
be opened. Shared by the tuner (``--storage``) and ``tunekit worker``."""

from __future__ import annotations


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


__all__ = ["storage_error", "storage_label"]
