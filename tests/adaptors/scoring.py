"""Top-1 accuracy of a model through an adaptor's own ``predict``: the one score the adaptor
tests compare candidates by, whatever the framework."""

from __future__ import annotations

from typing import Any

from tunekit.adaptor import Adaptor


def top1(adaptor: Adaptor, model: Any, data: list) -> float:
    """The share of samples in ``data`` (``(inputs, labels)`` batches) whose arg-max is right."""
    hits = total = 0
    for outputs, labels in adaptor.predict(model, data):
        hits += int((outputs.argmax(1) == labels).sum())
        total += len(labels)
    return hits / total
