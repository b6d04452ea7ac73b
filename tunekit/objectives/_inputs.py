"""Choosing the evaluation batches an objective runs the model on (framework-free)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tunekit.adaptor import DataBatch
from tunekit.data import batch_size as samples_in
from tunekit.data import split_batch
from tunekit.errors import DataError


def batch_inputs(data: Iterable[DataBatch], limit: int, batch_size: int | None,
                 what: str) -> list[Any]:
    """Up to ``limit`` batch inputs, all of one size.

    With ``batch_size=None``, the batches of the largest size the data yields, so a smaller last
    batch does not skew a figure; with ``batch_size=n``, the first ``n`` samples of every batch
    holding at least ``n``. Inputs are cut by slicing (``x[:n]``), which tensors and arrays of
    every framework support. ``what`` names the objective's ``batch_size`` in errors.
    """
    chosen: list[Any] = []
    size = batch_size or 1
    largest = 0
    for batch in data:
        inputs = split_batch(batch)[0]
        n = samples_in(inputs)
        largest = max(largest, n)
        if batch_size is not None:
            if n >= batch_size:
                chosen.append(first_samples(inputs, batch_size))
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
        raise DataError(f"{what} is {batch_size} but the evaluation batches hold at most "
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


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
