"""Helpers for the user's data: batches of ``(inputs, labels)`` from any iterable."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from tunekit.errors import DataError


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, labels)`` of one batch, by the plain reading: a 2-tuple is the pair, anything
    else is bare inputs (labels ``None``: enough for calibration and for an ``eval_func``, not
    for a metric).

    Within a tuning every loader has already been resolved by the data contract
    (:mod:`tunekit.batches`) into canonical ``(inputs, labels)`` pairs, for which this reading
    is exact; only code outside a tuning (graph optimization's example batch) meets raw ones.
    """
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


def batch_size(inputs: Any) -> int:
    """Number of samples in a batch's inputs (first dimension of its first tensor)."""
    first = inputs
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    shape = getattr(first, "shape", None)
    if shape is None or len(shape) == 0:
        return 1
    return int(shape[0])


def take_samples(data: Iterable[Any], limit: int | None) -> Iterator[Any]:
    """The batches of ``data`` until ``limit`` samples have been seen (all batches if ``None``).

    The last batch is yielded whole, so up to one batch more than ``limit`` samples may pass;
    cutting tensors here would tie this module to a framework.
    """
    seen = 0
    for batch in data:
        if limit is not None and seen >= limit:
            return
        yield batch
        seen += batch_size(split_batch(batch)[0])


def require_batches(data: Iterable[Any], what: str) -> list[Any]:
    """Materialise ``data`` as a list, failing clearly when it yields nothing."""
    try:
        batches = list(data)
    except TypeError as exc:
        raise DataError(f"{what} is not iterable ({type(data).__name__}); give a dataloader or a "
                        "list of (inputs, labels) batches") from exc
    if not batches:
        raise DataError(f"{what} yielded no batches; check the dataset and the dataloader")
    return batches


def batch_inputs(data: Iterable[Any], limit: int, wanted: int | None,
                 what: str) -> list[Any]:
    """Up to ``limit`` batch inputs, all of one size.

    With ``wanted=None``, the batches of the largest size the data yields, so a smaller last
    batch does not skew a figure; with ``wanted=n``, the first ``n`` samples of every batch
    holding at least ``n``. Inputs are cut by slicing (``x[:n]``), which tensors and arrays of
    every framework support. ``what`` names the setting (``performance.batch_size``) in errors.
    """
    chosen: list[Any] = []
    size = wanted or 1
    largest = 0
    for batch in data:
        inputs = split_batch(batch)[0]
        n = batch_size(inputs)
        largest = max(largest, n)
        if wanted is not None:
            if n >= wanted:
                chosen.append(first_samples(inputs, wanted))
        elif n > size:  # a larger batch: the smaller ones seen so far were a ragged tail
            size, chosen = n, [inputs]
        elif n == size:
            chosen.append(inputs)
        if len(chosen) >= limit:
            break
    if largest == 0:
        raise DataError("the evaluation data yielded no samples to run; check the dataset and "
                        "the dataloader")
    if not chosen:
        raise DataError(f"{what} is {wanted} but the evaluation batches hold at most "
                        f"{largest} samples; lower it or give a dataloader with larger batches")
    return chosen


def first_samples(inputs: Any, n: int) -> Any:
    """The first ``n`` samples of a batch's inputs (a tensor, or a tuple/list/dict of them)."""
    if isinstance(inputs, dict):
        return {key: first_samples(value, n) for key, value in inputs.items()}
    if isinstance(inputs, list):
        return [first_samples(value, n) for value in inputs]
    if isinstance(inputs, tuple):
        return tuple(first_samples(value, n) for value in inputs)
    return inputs[:n]
