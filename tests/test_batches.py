"""The data contract (tunekit.batches): how each batch form is read, the decisions on flat
tuples, and the one-line message of a batch the model cannot take."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tunekit.adaptors.pytorch import PyTorchAdaptor
from tunekit.batches import Canonical, Layout, describe_call, layout, show_signature
from tunekit.config import DataSpec
from tunekit.data import split_batch
from tunekit.errors import ConfigError, DataError

X, MASK, Y = torch.zeros(4, 6), torch.ones(4, 6), torch.zeros(4, dtype=torch.long)


class One(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(-1)


class Two(nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (x * mask).sum(-1)


class OptionalMask(nn.Module):
    """HuggingFace-like: every argument optional."""

    def forward(self, x: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                **kwargs: Any) -> torch.Tensor:
        assert x is not None
        if mask is not None and mask.shape != x.shape:
            raise ValueError(f"mask of shape {tuple(mask.shape)} for input {tuple(x.shape)}")
        return x.sum(-1) if mask is None else (x * mask).sum(-1)


class Lengths(nn.Module):
    """An optional second input of another shape than the first: a flat pair is ambiguous."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return x.sum(-1)


class Targets(nn.Module):
    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        return x.sum(-1)


def read(model: nn.Module, batch: Any, **spec: Any) -> tuple[Any, Any]:
    adaptor = PyTorchAdaptor()
    found = layout(batch, lambda inputs: adaptor.run_batch(model, inputs),
                   adaptor.forward_signature(model), DataSpec(**spec), "calibration batch 0",
                   type(model).__name__)
    return found.split(batch)


def test_plain_forms_keep_their_reading() -> None:
    assert read(One(), X)[1] is None
    assert read(One(), (X, Y))[1] is Y
    assert read(Two(), ((X, MASK), Y)) == ((X, MASK), Y)
    assert read(One(), (X, None)) == (X, None)
    assert read(One(), (X, ["a", "b", "c", "d"]))[1] == ["a", "b", "c", "d"]


def test_mapping_batches_give_up_their_label_key() -> None:
    inputs, labels = read(OptionalMask(), {"x": X, "mask": MASK, "labels": Y})
    assert set(inputs) == {"x", "mask"} and labels is Y
    inputs, labels = read(OptionalMask(), {"x": X, "gold": Y}, label_key="gold")
    assert set(inputs) == {"x"} and labels is Y


@pytest.mark.parametrize("model, batch, labelled", [
    (One(), (X, MASK), True),               # forward takes one input
    (Two(), (X, MASK), False),              # forward requires two
    (Two(), (X, MASK, Y), True),            # one more than forward takes
    (OptionalMask(), (X, MASK), False),     # both calls run; same shape: a mask beside its ids
    (OptionalMask(), (X, Y), True),         # the pair as inputs fails; labels of another shape
    (Targets(), (X, X), True),              # the second parameter is named like labels
])
def test_flat_tuples_are_resolved(model: nn.Module, batch: tuple[Any, ...],
                                  labelled: bool) -> None:
    labels = read(model, batch)[1]
    assert (labels is batch[-1]) is labelled


def test_a_truly_ambiguous_tuple_stops_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="data.pairs: calibration batch 0 is a flat 2-tuple "
                                          "that Lengths accepts both"):
        read(Lengths(), (X, Y))
    assert read(Lengths(), (X, Y), pairs="labelled")[1] is Y
    assert read(Lengths(), (X, Y), pairs="inputs") == ((X, Y), None)


def test_a_batch_size_mismatch_means_labels_without_running() -> None:
    assert read(Two(), (X, torch.zeros(3)))[1] is not None


def test_without_a_signature_or_runner_the_plain_reading_holds() -> None:
    pair = (np.zeros((4, 2)), np.zeros(4))
    assert layout(pair, None, None, DataSpec(), "b").split(pair)[1] is pair[1]
    triple = (np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 2)))
    assert layout(triple, lambda i: None, None, DataSpec(), "b").split(triple)[1] is None


def test_canonical_batches_read_with_split_batch_and_keep_length() -> None:
    data = Canonical([(X, MASK), (X, MASK)], Layout(labelled=False))
    assert len(data) == 2
    inputs, labels = split_batch(next(iter(data)))
    assert labels is None and len(inputs) == 2
    assert len(list(data)) == 2  # iterable again (one pass per trial)


def test_the_call_and_the_signature_are_described_briefly() -> None:
    assert describe_call({"ids": X, "mask": MASK}) == "model(ids=Tensor[4, 6], mask=Tensor[4, 6])"
    assert describe_call((X, (MASK,))) == "model(Tensor[4, 6], (Tensor[4, 6]))"

    def forward(a, b=None, c=3, *rest, d="x" * 40, **extra):  # noqa: ANN001, ANN002, ANN003
        return a

    assert show_signature(inspect.signature(forward)) == "(a, b=None, c=3, *rest, d=…, ...)"


def test_both_readings_failing_name_the_batch_call_forward_and_fix() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
            raise RuntimeError("shape mismatch\nsecond line")

    with pytest.raises(DataError) as caught:
        read(Broken(), (X, MASK))
    message = str(caught.value)
    assert message.startswith("calibration batch 0 does not fit the model: model(Tensor[4, 6]) "
                              "raised RuntimeError: shape mismatch; Broken.forward takes (x, "
                              "z=None); fix: ")
    assert "\n" not in message
