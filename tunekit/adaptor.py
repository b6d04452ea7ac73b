"""The Adaptor plugin interface: what tunekit needs from a framework.

An adaptor turns a real model into a :class:`~tunekit.space.TuningSpace`, builds a candidate for any
config in it, and runs models. It holds no evaluation loop: metrics and objectives live in the core,
so every framework is judged by the same code.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tunekit.errors import NotSupportedError
from tunekit.space import OpKey, QuantConfig, TuningSpace

#: A batch as a dataloader yields it: ``(inputs, labels)``; inputs may be a tensor, tuple or dict.
Batch = Any


class Adaptor(abc.ABC):
    """Base class of framework adaptors (entry-point group ``tunekit.adaptors``)."""

    #: File suffix of saved tuned models, e.g. ``.pt``.
    model_suffix: ClassVar[str] = ""

    @abc.abstractmethod
    def capabilities(self, model: Any, approach: str = "static") -> TuningSpace:
        """The tuning space of ``model``: per tunable op, its options, the default first.

        ``approach`` is ``static``, ``dynamic`` or ``auto`` and decides which int8 options appear.
        """

    @abc.abstractmethod
    def quantize(self, model: Any, config: QuantConfig, calib_data: Iterable[Batch]) -> Any:
        """A new model running each op in the precision ``config`` gives it; ``model`` is untouched."""

    @abc.abstractmethod
    def predict(self, model: Any, data: Iterable[Batch]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Run ``model`` over ``data``; yield ``(outputs, labels)`` per batch as numpy arrays."""

    def load_model(self, path: Path) -> Any:
        """Load an FP32 model from a file (``model.path`` in the YAML)."""
        raise NotSupportedError(f"{type(self).__name__} cannot load models from files; "
                                "give 'model.factory' instead")

    def run_batch(self, model: Any, inputs: Any) -> Any:
        """One inference call on one batch of inputs (used to time a model)."""
        raise NotSupportedError(f"{type(self).__name__} cannot time models")

    def inspect(self, model: Any, candidate: Any, ops: Sequence[OpKey],
                data: Iterable[Batch]) -> Mapping[OpKey, tuple[np.ndarray, np.ndarray]]:
        """Per op, its outputs in the FP32 ``model`` and in ``candidate`` on the same inputs."""
        raise NotSupportedError(f"{type(self).__name__} cannot inspect op outputs "
                                "(needed to rank ops by quantization error)")

    def save(self, candidate: Any, config: QuantConfig, path: Path) -> None:
        """Write a tuned model to ``path`` in a safe, framework-native format."""
        raise NotSupportedError(f"{type(self).__name__} cannot save models")

    def load(self, model: Any, config: QuantConfig, path: Path) -> Any:
        """Rebuild a tuned model saved by :meth:`save` from its FP32 ``model`` and recipe."""
        raise NotSupportedError(f"{type(self).__name__} cannot load tuned models")

    def model_size(self, model: Any) -> int:
        """Serialized size of ``model`` in bytes."""
        raise NotSupportedError(f"{type(self).__name__} cannot report model size")
