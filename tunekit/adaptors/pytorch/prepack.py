"""Packed int8 weights reused across trials.

Converting a prepared graph quantizes every int8 op's weight and hands it to oneDNN/FBGEMM's
``*_prepack``, which reorders it into the kernel's blocked layout. That packing was a third of a
ResNet trial's build time, and between two trials of a tuning most ops keep their config: the
same float weight, quantized the same way, is packed again and again.

:class:`PackedWeights` memoizes the prepack ops while ``convert_fx`` runs: the key is a digest of
the quantized weight (its int8 values, scales and zero points), the bias and the op's geometry,
so an op whose config changed (other granularity, other scheme) gets a key of its own, and a
hit returns the very object the same inputs produced before. Packed parameters are never
modified in place (a module that changes its weight packs anew), so sharing one between
candidates is safe. The memo is bounded by the bytes of the weights it holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: the prepack ops torch.ao's quantized modules call from Python when they are built
PREPACK_OPS = ("linear_prepack", "conv1d_prepack", "conv2d_prepack", "conv3d_prepack")

_patching = threading.Lock()  # the ops live in torch's global namespace


def digest(value: Any) -> Any:
    """A hashable fingerprint of a prepack argument: tensors by content, the rest as is."""
    if value is None or not isinstance(value, torch.Tensor):
        return value
    tensor = value.detach()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{tensor.dtype}{tuple(tensor.shape)}{tensor.qscheme() if tensor.is_quantized else ''}"
             .encode())
    if tensor.is_quantized:
        if tensor.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            h.update(tensor.q_per_channel_scales().numpy().tobytes())
            h.update(tensor.q_per_channel_zero_points().numpy().tobytes())
            h.update(str(tensor.q_per_channel_axis()).encode())
        else:
            h.update(f"{tensor.q_scale()} {tensor.q_zero_point()}".encode())
        tensor = tensor.int_repr()
    h.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()


class PackedWeights:
    """Memo of packed weights, kept in one FP32 model's state (its trials share the weights)."""

    def __init__(self, max_bytes: int = 512 << 20) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._memo: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
        self._bytes = 0

    @contextlib.contextmanager
    def reused(self) -> Iterator[None]:
        """Within the block, torch's prepack ops answer repeated inputs from the memo."""
        namespace = torch.ops.quantized
        with _patching:
            originals = {name: getattr(namespace, name) for name in PREPACK_OPS}
            for name, op in originals.items():
                setattr(namespace, name, self._memoized(name, op))
            try:
                yield
            finally:
                for name, op in originals.items():
                    setattr(namespace, name, op)

    def _memoized(self, name: str, op: Callable[..., Any]) -> Callable[..., Any]:
        def prepack(*args: Any) -> Any:
            key = (name, *(digest(a) for a in args))
            entry = self._memo.get(key)
            if entry is not None:
                self.hits += 1
                self._memo.move_to_end(key)
                return entry[0]
            self.misses += 1
            packed = op(*args)
            size = sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor))
            self._memo[key] = (packed, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._memo) > 1:
                _, (_, dropped) = self._memo.popitem(last=False)
                self._bytes -= dropped
            return packed

        return prepack


__all__ = ["PREPACK_OPS", "PackedWeights", "digest"]
