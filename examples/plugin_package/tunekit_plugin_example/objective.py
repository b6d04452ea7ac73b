"""Model size in MiB, through the adaptor's size probe (no framework import here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tunekit import Adaptor, Objective


class SizeMiB(Objective):
    """Serialized model size in MiB: cheap, so measured for every candidate."""

    direction = "minimize"
    costly = False
    unit = " MiB"

    def measure(self, adaptor: Adaptor, model: Any, data: Iterable[Any]) -> float:
        return adaptor.model_size(model) / 2 ** 20
