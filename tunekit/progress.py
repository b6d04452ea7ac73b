"""Progress bars for the long loops (calibration, evaluation, timing).

tqdm on stderr, shown only on a terminal so logs and CI output stay clean; ``TUNEKIT_PROGRESS=1``
forces them on, ``0`` off.
"""

from __future__ import annotations

import os
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
