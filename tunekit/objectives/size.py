"""Model size: bytes of the serialized model in the adaptor's deployable format."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.objective import Objective


class Size(Objective):
    """Serialized size in bytes, from ``adaptor.model_size`` (for PyTorch: the bytes of
    ``torch.save(model.state_dict())``, where int8 weights take one byte each).

    Bytes, not element counts: Intel Neural Compressor's size objective counted parameters,
    which does not change when weights become int8. Cheap, so measured for every candidate.
    """

    direction = "minimize"
    costly = False
    unit = " B"

    def measure(self, adaptor: Adaptor, model: Any, data: Iterable[DataBatch]) -> float:
        return float(adaptor.model_size(model))
