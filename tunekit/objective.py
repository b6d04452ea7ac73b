"""The Objective plugin interface: what tuning optimizes among models that meet the goal."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

from tunekit.adaptor import Adaptor, DataBatch


class Objective(abc.ABC):
    """Base class of objectives (entry-point group ``tunekit.objectives``).

    ``costly`` objectives (latency, memory) are measured only for candidates that meet the
    accuracy goal; cheap ones for every candidate.
    """

    direction: ClassVar[Literal["minimize", "maximize"]] = "minimize"
    costly: ClassVar[bool] = True
    unit: ClassVar[str] = ""
    #: The value depends on the machine's state when measured (latency: frequency, caches, other
    #: load), so the tuner measures the FP32 reference again right beside each candidate and
    #: scores the pair, instead of comparing with an FP32 figure taken once at the start.
    drifts: ClassVar[bool] = False

    @abc.abstractmethod
    def measure(self, adaptor: Adaptor, model: Any, data: Iterable[DataBatch]) -> float:
        """Measure ``model``; ``data`` yields evaluation batches (use their inputs only)."""

    def measure_beside(self, adaptor: Adaptor, model: Any, reference: Any,
                       data: Iterable[DataBatch]) -> tuple[float, float]:
        """``(model's value, reference's value)``, measured beside each other for an objective
        that :attr:`drifts` (``reference`` is the FP32 model). The default measures one after
        the other, the reference first, so :meth:`details` describe ``model``; latency
        alternates the two in rounds instead."""
        reference_value = self.measure(adaptor, reference, data)
        return self.measure(adaptor, model, data), reference_value

    def details(self) -> Mapping[str, float]:
        """Further figures of the last :meth:`measure` (e.g. throughput beside latency), stored
        with the trial as ``<objective>.<key>``; numbers only, so the history stays JSON."""
        return {}
