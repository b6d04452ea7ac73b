"""Progress bars for the long loops (calibration, evaluation, timing), and the per-trial lines
of a tuning started from Python (:func:`trial_lines`).

tqdm on stderr, shown only on a terminal so logs and CI output stay clean; ``TUNEKIT_PROGRESS=1``
forces them on, ``0`` off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def _enabled() -> bool | None:
    flag = os.environ.get("TUNEKIT_PROGRESS")
    if flag is None:
        return None  # tqdm decides: on for a TTY, off otherwise
    return flag not in ("0", "false", "no")


def progress(items: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
    from tqdm.auto import tqdm

    enabled = _enabled()
    bar: Any = tqdm(items, desc=label, total=total, leave=False, unit="batch",
                    disable=None if enabled is None else not enabled, dynamic_ncols=True)
    yield from bar


@contextlib.contextmanager
def trial_lines(quiet: bool = False) -> Iterator[None]:
    """Show the ``tunekit`` logger's INFO lines (one per trial, as the CLI prints them) on
    stderr for the body, unless ``quiet`` or the program configured logging itself (the
    ``tunekit`` or the root logger has a handler): then its own set-up decides."""
    logger = logging.getLogger("tunekit")
    if quiet or logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
