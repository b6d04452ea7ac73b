"""Packed int8 weights reused across trials: the same candidates, fewer packings."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from tunekit.adaptors.pytorch import PyTorchAdaptor
from tunekit.adaptors.pytorch.prepack import PackedWeights, digest


def test_reused_weights_give_identical_candidates(digits_model: Any, calib: list) -> None:
    """Trials that change one op pack only what changed; every candidate equals one built
    without the memo, bit for bit."""
    tuning = PyTorchAdaptor(backend="fx")
    space = tuning.capabilities(digits_model)
    tuning.calibrate(digits_model, space, calib)
    default = space.default()
    first, last = space.ops[0], space.ops[-1]
    configs = [default,
               default.with_op(first, space.option(first, "fp32")),
               default.with_op(last, space.option(last, "int8", granularity="per_tensor")),
               default]
    x = calib[0][0]
    for config in configs:
        candidate = tuning.quantize(digits_model, config, calib)
        fresh = PyTorchAdaptor(backend="fx")  # a new memo each time: every weight packed anew
        expected = fresh.quantize(digits_model, config, calib)
        with torch.inference_mode():
            assert torch.equal(candidate(x), expected(x)), config.summary()
    # every weight of trials 2-4 but fc2 per tensor was packed before (trial 2 has one int8 op
    # fewer); torch.ao also packs a placeholder weight when it creates each module, which
    # rarely repeats, so the hits are at least these
    assert tuning._state(digits_model).packed.hits >= 3 * len(space.ops) - 2


def test_digest_tells_quantizations_apart() -> None:
    weight = torch.randn(8, 4)
    per_tensor = torch.quantize_per_tensor(weight, 0.05, 0, torch.qint8)
    other_scale = torch.quantize_per_tensor(weight, 0.06, 0, torch.qint8)
    per_channel = torch.quantize_per_channel(weight, torch.full((8,), 0.05),
                                             torch.zeros(8, dtype=torch.long), 0, torch.qint8)
    digests = {digest(t) for t in (per_tensor, other_scale, per_channel)}
    assert len(digests) == 3
    assert digest(per_tensor) == digest(torch.quantize_per_tensor(weight.clone(), 0.05, 0,
                                                                   torch.qint8))
    assert digest(None) is None and digest((1, 1)) == (1, 1)


def test_memo_is_bounded_by_bytes() -> None:
    memo = PackedWeights(max_bytes=3000)
    with memo.reused():
        for seed in range(4):
            torch.manual_seed(seed)
            w = torch.quantize_per_tensor(torch.randn(32, 32), 0.05, 0, torch.qint8)
            torch.ops.quantized.linear_prepack(w, None)  # 1 KiB of int8 each
    assert memo.misses == 4 and len(memo._memo) == 2
    assert torch.ops.quantized.linear_prepack.__class__.__name__ == "OpOverloadPacket"
