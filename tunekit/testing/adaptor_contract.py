"""Checks every framework adaptor should pass (needs pytest; shipped for adaptor authors).

Subclass :class:`AdaptorContract` in a test module and provide four fixtures: ``adaptor`` (an
instance), ``model`` (a small FP32 model of that framework with at least two tunable ops),
``calib`` and ``eval_data`` (lists of ``(inputs, labels)`` batches the model accepts), and a
fifth for rule 11, ``other_model`` (a second FP32 model the same batches fit, whose outputs
differ: the same architecture with other weights is the sharpest check; without it rule 11
is skipped, saying why). The checks
use only the :class:`~tunekit.adaptor.Adaptor` interface, so the PyTorch, TensorFlow and ONNX
Runtime adaptors prove the same behaviour with the same code, and so will the next one.

The rules, one test each (docs/writing-an-adaptor.md explains why the tuner needs each):

1. ``capabilities(model, "static")``: at least two ops; each op's options start with int8, the
   float options follow, and ``OpConfig("fp32")`` is among them.
2. An approach the adaptor does not offer raises a :class:`~tunekit.errors.TunekitError` whose
   message mentions "approach" (a :class:`~tunekit.errors.ConfigError` on
   ``quantization.approach`` is the usual choice).
3. ``quantize`` with the default config leaves ``model`` untouched, and ``predict`` yields
   **float32** outputs of the FP32 model's shape that agree with it on at least 90 % of top-1.
4. Every op in fp32 reproduces the model's outputs (within 1e-3 of their largest magnitude).
5. Each single-op fallback builds and runs (finite outputs).
6. ``save`` then ``load`` with the same config gives bit-identical outputs; ``load`` with another
   config raises :class:`~tunekit.errors.ModelError` whose message says "another config".
7. ``inspect`` returns a float32 ``(fp32, candidate)`` pair of equal shapes for every op asked.
8. A config naming an op the model lacks raises :class:`~tunekit.errors.ModelError` naming it.
9. ``run_batch`` runs a candidate on one batch's inputs; ``model_size`` is positive and smaller
   for the default int8 candidate than for the FP32 model.
10. The constructor takes keyword-only parameters (YAML ``model.options`` arrive as keywords).
11. State is per model: one adaptor calibrating (``calibrate(..., cache_dir=)``) and quantizing
    two models gives each the candidate a state-free copy (the adaptor pickled, as for another
    process) gives it after calibrating from the same ``cache_dir`` (a resumed tuning).

So ``save``, ``load``, ``inspect``, ``run_batch`` and ``model_size``, optional in
:class:`~tunekit.adaptor.Adaptor` (the default raises
:class:`~tunekit.errors.NotSupportedError`), are required by this contract: without them a
tuning cannot keep its best model, rank ops by error, or measure speed and size.
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunekit.adaptor import Adaptor
from tunekit.errors import ModelError, TunekitError
from tunekit.space import OpConfig, OpKey, QuantConfig


def outputs(adaptor: Adaptor, model: Any, data: list[Any]) -> np.ndarray:
    """Every batch's outputs, stacked."""
    return np.concatenate([out for out, _ in adaptor.predict(model, data)])


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of samples whose arg-max class agrees."""
    return float((a.argmax(-1) == b.argmax(-1)).mean())


class AdaptorContract:
    """The behaviour the tuner relies on, checked on a real model."""

    def test_space_orders_int8_first_then_floats_with_fp32(self, adaptor: Adaptor,
                                                          model: Any) -> None:
        """int8 options head every op; the float options follow (in the order the adaptor
        expects to run faster), and fp32 is always among them."""
        space = adaptor.capabilities(model, "static")
        assert len(space.ops) >= 2
        for op in space.ops:
            options = space.options[op]
            assert options[0].precision == "int8", op
            assert OpConfig("fp32") in options, op
            precisions = [o.precision for o in options]
            first_float = next(i for i, p in enumerate(precisions) if p != "int8")
            assert all(p != "int8" for p in precisions[first_float:]), op

    def test_unknown_approach_is_a_config_error(self, adaptor: Adaptor, model: Any) -> None:
        with pytest.raises(TunekitError, match="approach"):
            adaptor.capabilities(model, "no_such_approach")

    def test_default_int8_stays_close_and_leaves_the_model_alone(
            self, adaptor: Adaptor, model: Any, calib: list, eval_data: list) -> None:
        before = outputs(adaptor, model, eval_data)
        candidate = adaptor.quantize(model, adaptor.capabilities(model).default(), calib)
        got = outputs(adaptor, candidate, eval_data)
        assert got.shape == before.shape and got.dtype == np.float32
        assert agreement(got, before) >= 0.9
        assert np.array_equal(outputs(adaptor, model, eval_data), before)

    def test_every_op_in_fp32_reproduces_the_model(self, adaptor: Adaptor, model: Any,
                                                   calib: list, eval_data: list) -> None:
        space = adaptor.capabilities(model)
        candidate = adaptor.quantize(model, space.uniform("fp32"), calib)
        expected = outputs(adaptor, model, eval_data)
        scale = float(np.abs(expected).max()) or 1.0
        assert np.abs(outputs(adaptor, candidate, eval_data) - expected).max() < 1e-3 * scale

    def test_every_single_op_fallback_builds(self, adaptor: Adaptor, model: Any,
                                             calib: list, eval_data: list) -> None:
        space = adaptor.capabilities(model)
        for op in space.ops:
            config = space.default().with_op(op, space.option(op, "fp32"))
            got = outputs(adaptor, adaptor.quantize(model, config, calib), eval_data)
            assert np.isfinite(got).all(), op

    def test_save_then_load_reproduces_outputs_exactly(self, adaptor: Adaptor, model: Any,
                                                       calib: list, eval_data: list,
                                                       tmp_path: Path) -> None:
        space = adaptor.capabilities(model)
        first = space.ops[0]
        config = space.default().with_op(first, space.option(first, "fp32"))
        candidate = adaptor.quantize(model, config, calib)
        path = tmp_path / f"best_model{adaptor.model_suffix}"
        adaptor.save(candidate, config, path)
        loaded = adaptor.load(model, config, path)
        assert np.array_equal(outputs(adaptor, loaded, eval_data),
                              outputs(adaptor, candidate, eval_data))
        with pytest.raises(ModelError, match="another config"):
            adaptor.load(model, space.uniform("fp32"), path)

    def test_inspect_pairs_float32_outputs_per_op(self, adaptor: Adaptor, model: Any,
                                                  calib: list) -> None:
        space = adaptor.capabilities(model)
        candidate = adaptor.quantize(model, space.default(), calib)
        pairs = adaptor.inspect(model, candidate, space.ops, calib)
        assert set(pairs) == set(space.ops)
        for op, (fp32, quantized) in pairs.items():
            assert fp32.shape == quantized.shape, op
            assert fp32.dtype == quantized.dtype == np.float32, op

    def test_config_naming_a_missing_op_is_a_model_error(self, adaptor: Adaptor, model: Any,
                                                         calib: list) -> None:
        config = adaptor.capabilities(model).default()
        stranger = QuantConfig({**config.ops, OpKey("no_such_op", "Conv2d"): OpConfig("fp32")})
        with pytest.raises(ModelError, match="no_such_op"):
            adaptor.quantize(model, stranger, calib)

    def test_run_batch_and_model_size(self, adaptor: Adaptor, model: Any, calib: list) -> None:
        candidate = adaptor.quantize(model, adaptor.capabilities(model).default(), calib)
        assert adaptor.run_batch(candidate, calib[0][0]) is not None
        assert 0 < adaptor.model_size(candidate) < adaptor.model_size(model)

    def test_constructor_takes_keyword_parameters_only(self, adaptor: Adaptor) -> None:
        parameters = inspect.signature(type(adaptor)).parameters.values()
        assert all(p.kind is p.KEYWORD_ONLY for p in parameters)

    @pytest.fixture
    def other_model(self) -> Any:
        """Overridden by suites that can give a second model (see the module docstring)."""
        pytest.skip("no other_model fixture: give a second FP32 model (other weights) to check "
                    "that per-model state does not mix")

    def test_state_is_per_model_and_survives_a_resume(self, adaptor: Adaptor, model: Any,
                                                      other_model: Any, calib: list,
                                                      eval_data: list, tmp_path: Path) -> None:
        """Two models calibrated and quantized by one adaptor get what each gets alone from a
        state-free copy calibrating from the same ``cache_dir``."""
        models = (model, other_model)
        alone = [pickle.loads(pickle.dumps(adaptor)) for _ in models]  # state-free copies
        fp32 = [outputs(a, m, eval_data) for a, m in zip(alone, models)]
        assert not np.array_equal(*fp32), "other_model must compute other outputs than model"
        spaces = [adaptor.capabilities(m) for m in models]
        for m, space in zip(models, spaces):
            adaptor.calibrate(m, space, calib, cache_dir=tmp_path)
        for m, space, expected in zip(models, spaces, fp32):
            assert np.array_equal(outputs(adaptor, m, eval_data), expected)
        shared = [outputs(adaptor, adaptor.quantize(m, space.default(), calib), eval_data)
                  for m, space in zip(models, spaces)]
        for a, m, space, got in zip(alone, models, spaces, shared):
            a.calibrate(m, space, calib, cache_dir=tmp_path)  # a resumed tuning's calibration
            assert np.array_equal(outputs(a, a.quantize(m, space.default(), calib), eval_data),
                                  got)
