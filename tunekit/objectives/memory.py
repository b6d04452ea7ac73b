"""Memory: the peak resident memory of inference, native allocations of the framework included."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.data import batch_inputs
from tunekit.objective import Objective
from tunekit.objectives._inputs import is_int


class Memory(Objective):
    """Peak memory footprint in bytes of the model running ``batches`` evaluation batches,
    measured by ``adaptor.peak_memory``.

    The footprint is the process's resident memory (RSS), not Python's heap: Intel Neural
    Compressor used ``tracemalloc``, which sees only Python allocations and so misses the
    framework's tensors and kernels' scratch buffers, i.e. nearly everything. The PyTorch adaptor
    loads the model in a fresh process and reports its peak RSS above that process's RSS before
    loading (weights, packed int8 weights, activations and workspaces), so a model twice as big
    reports about twice the footprint. Costly (a process start per measurement), so measured
    only for candidates that meet the accuracy goal.
    """

    direction = "minimize"
    costly = True
    unit = " B"

    def __init__(self, *, batches: int = 3, batch_size: int | None = None) -> None:
        if not is_int(batches) or batches < 1:
            raise ValueError(f"batches must be an integer ≥ 1, got {batches!r}")
        if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.batches = batches
        self.batch_size = batch_size

    def measure(self, adaptor: Adaptor, model: Any, data: Iterable[DataBatch]) -> float:
        inputs = batch_inputs(data, self.batches, self.batch_size, "memory.batch_size")
        return float(adaptor.peak_memory(model, inputs))
