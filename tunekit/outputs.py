"""Output paths the user names (``--out``): never overwritten unless they say so.

Every command that writes where the user points checks the path before its work starts, so a
path that is taken costs seconds, not a tuning; ``--force`` is the one way to replace what is
there. Only a file, or a folder that is one of tunekit's own outputs (``marker`` inside it), is
ever replaced: ``--force`` never deletes an arbitrary folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from tunekit.errors import ConfigError


def check_out(path: Path, where: str, force: bool, markers: Iterable[str] = ()) -> Path:
    """``path`` if it may be written: new, an empty folder, or taken and ``force`` given (a
    taken folder must then hold one of ``markers``, tunekit's output files). Creates the
    parent folder, so an unwritable place fails now too."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(where, f"cannot create the folder of {path} ({exc.strerror}); give a "
                                 "path in a writable folder") from exc
    if not _taken(path):
        return path
    if not force:
        raise ConfigError(where, f"{path} already exists; add --force (Python: force=True) to "
                                 "replace it, or give another path")
    if path.is_dir() and not any((path / m).exists() for m in markers):
        raise ConfigError(where, f"{path} is a folder that holds no tunekit output, so --force "
                                 "does not replace it; give another path")
    return path


def clear(path: Path) -> None:
    """Remove what :func:`check_out` allowed ``--force`` to replace (a file or an output
    folder), just before the new output is written."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _taken(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


__all__ = ["check_out", "clear"]
