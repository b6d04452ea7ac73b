"""Dequantizes sunk past int8-exact ops: the same outputs, less float work between int8 ops."""

from __future__ import annotations

import copy
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.ao.quantization.quantize_fx import convert_fx

from tunekit.adaptors.pytorch import PyTorchAdaptor, fx_backend
from tunekit.adaptors.pytorch.runtime import calibrate
from tunekit.adaptors.pytorch.sink_dequantize import sink_dequantize


def test_pool_and_flatten_run_in_int8_between_differently_calibrated_ops(
        digits_model: Any, calib: list) -> None:
    """conv3 (min/max) → pool2 → flatten → fc1 (histogram), pooling left without a qconfig (no
    int8 glue): FX dequantizes after conv3; the rewrite moves the dequantize behind pool2 and
    flatten, with bit-identical outputs."""
    adaptor = PyTorchAdaptor(backend="fx")
    space = adaptor.capabilities(digits_model)
    default = space.default()
    fc1 = next(op for op in space.ops if op.name == "fc1")
    config = default.with_op(fc1, space.option(fc1, "int8", algorithm="histogram"))
    prepared = fx_backend.prepare(adaptor._fused(digits_model), config, followers=False)
    calibrate(prepared, calib)
    plain = convert_fx(prepared)
    sunk = copy.deepcopy(plain)
    assert "pool2(dequantize" in plain.code.replace(" ", "").replace("_3", "")
    assert sink_dequantize(sunk) == 1
    assert "self.pool2(conv3)" in sunk.code
    x = calib[0][0]
    with torch.inference_mode():
        assert torch.equal(plain(x), sunk(x))
    assert sink_dequantize(sunk) == 0  # nothing left to move


def test_candidates_get_the_rewrite_and_float_readers_keep_theirs(digits_model: Any,
                                                                   calib: list) -> None:
    """The adaptor's candidates come rewritten; with conv3 back in float there is no int8
    tensor to move, and the candidate still matches the FP32 model closely."""
    adaptor = PyTorchAdaptor(backend="fx")
    space = adaptor.capabilities(digits_model)
    fc1 = next(op for op in space.ops if op.name == "fc1")
    mixed = space.default().with_op(fc1, space.option(fc1, "int8", algorithm="histogram"))
    assert "self.pool2(conv3)" in adaptor.quantize(digits_model, mixed, calib).code
    conv3 = next(op for op in space.ops if op.name == "conv3")
    config = space.default().with_op(conv3, space.option(conv3, "fp32"))
    candidate = adaptor.quantize(digits_model, config, calib)
    assert sink_dequantize(candidate) == 0
    x = calib[0][0]
    with torch.inference_mode():
        assert torch.allclose(candidate(x), digits_model(x), atol=0.2)
