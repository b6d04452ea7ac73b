"""The calibrate-once statistics kept in the workspace: reused on resume, never unpickled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from tunekit.adaptors.pytorch import PyTorchAdaptor
from tunekit.adaptors.pytorch import calibration
from tunekit.space import INT8_ITEMS


def some_configs(space: Any) -> list[Any]:
    default = space.default()
    first = space.ops[0]
    configs = [default, default.with_op(first, space.option(first, "fp32"))]
    for item in INT8_ITEMS:
        for option in space.alternatives(first, default.ops[first], item):
            configs.append(default.with_ops({op: option for op in space.ops
                                             if option in space.options[op]}))
    return configs


def test_a_second_run_reuses_the_statistics_and_builds_identical_candidates(
        digits_model: Any, calib: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = PyTorchAdaptor(backend="fx")
    space = first.capabilities(digits_model)
    first.calibrate(digits_model, space, calib, cache_dir=tmp_path)
    files = list(tmp_path.glob("observers-*.pt"))
    assert len(files) == 1
    torch.load(files[0], weights_only=True)  # plain tensors and keys: the safe loader reads it

    collected = []
    original = calibration.ObserverStore.collect.__func__
    monkeypatch.setattr(calibration.ObserverStore, "collect", classmethod(
        lambda cls, *a, **k: collected.append(1) or original(cls, *a, **k)))
    resumed = PyTorchAdaptor(backend="fx")  # a new process would have a new adaptor
    resumed.calibrate(digits_model, space, calib, cache_dir=tmp_path)
    assert not collected, "the calibration data ran again although the statistics were kept"
    inputs = calib[0][0][:16]
    for config in some_configs(space):
        expected = first.quantize(digits_model, config, calib)
        got = resumed.quantize(digits_model, config, calib)
        with torch.inference_mode():
            assert torch.equal(expected(inputs), got(inputs)), config.summary()


def test_other_data_or_a_damaged_file_calibrates_again(digits_model: Any, calib: list,
                                                       tmp_path: Path) -> None:
    adaptor = PyTorchAdaptor(backend="fx")
    space = adaptor.capabilities(digits_model)
    adaptor.calibrate(digits_model, space, calib, cache_dir=tmp_path)
    half = [(calib[0][0] * 0.5, calib[0][1])]
    adaptor.calibrate(digits_model, space, half, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("observers-*.pt"))
    assert len(files) == 2  # the fingerprint covers the calibration data
    for path in files:
        path.write_bytes(b"not a torch file")
    adaptor.calibrate(digits_model, space, calib, cache_dir=tmp_path)  # warns, recollects
    assert adaptor._store(digits_model) is not None and len(adaptor._store(digits_model)) > 0
