"""The strategy context's model probes, built over an adaptor: per-op output error and Hessian
traces.

Strategies never see the model or the adaptor (:mod:`tunekit.strategy`); those that rank ops by
measured sensitivity get these closures in :class:`~tunekit.strategy.TuneContext` instead. Each
answer is cached, so a strategy may ask again (resume replays it) without re-measuring.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunekit.adaptor import Adaptor
from tunekit.errors import ConfigError, DataError, NotSupportedError, TrialError, TunekitError
from tunekit.references import resolve
from tunekit.space import OpKey, QuantConfig
from tunekit.strategy import HessianTrace, Sensitivity

#: Calibration batches the probes run: enough to rank ops, a fraction of a trial's cost.
PROBE_BATCHES = 2


def mse(expected: np.ndarray, got: np.ndarray) -> float:
    """Mean squared error between an op's FP32 and candidate outputs, relative to the FP32
    output's mean square so that ops with large activations do not rank first for their scale."""
    expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    scale = float(np.mean(expected ** 2)) or 1.0
    return float(np.mean((expected - got) ** 2)) / scale


def sensitivity_probe(adaptor: Adaptor, model: Any, calib: Sequence[Any],
                      inputs: Iterable[Any] | None = None) -> Sensitivity:
    """``config -> {op: relative output MSE}`` over the first :data:`PROBE_BATCHES` batches of
    ``inputs`` (the evaluation data where there is one, else the calibration data): ``config`` is
    quantized once and inspected against the FP32 model. Evaluation inputs come first because
    an activation range too narrow for them (calibration on unrepresentative data) clips nothing
    on the calibration batches themselves, so only they show the error that costs accuracy. A
    config that cannot be built raises :class:`NotSupportedError` naming why."""
    batches = list(itertools.islice(inputs if inputs is not None else calib, PROBE_BATCHES))
    cache: dict[QuantConfig, Mapping[OpKey, float]] = {}

    def sensitivity(config: QuantConfig) -> Mapping[OpKey, float]:
        if config not in cache:
            if not batches:
                raise NotSupportedError("measuring op sensitivity needs calibration data")
            try:
                candidate = adaptor.quantize(model, config, calib)
            except TrialError as exc:
                raise NotSupportedError(f"measuring op sensitivity: {exc}") from exc
            outputs = adaptor.inspect(model, candidate, list(config.ops), batches)
            cache[config] = {op: mse(*pair) for op, pair in outputs.items()}
        return cache[config]

    return sensitivity


def hessian_probe(adaptor: Adaptor, model: Any, ops: Sequence[OpKey], calib: Sequence[Any],
                  base_dir: Path) -> HessianTrace:
    """``loss -> {op: Hessian trace per weight}`` over the first :data:`PROBE_BATCHES`
    calibration batches; ``loss`` is a ``module:attr`` reference resolved from ``base_dir`` (the
    config's folder), or None for the adaptor's default loss."""
    batches = list(calib[:PROBE_BATCHES])
    cache: dict[str | None, Mapping[OpKey, float]] = {}

    def hessian(loss: str | None) -> Mapping[OpKey, float]:
        if loss not in cache:
            function = None
            if loss is not None:
                function = resolve(loss, base_dir, "tuning.strategy.loss")
                if not callable(function):
                    raise ConfigError("tuning.strategy.loss", f"{loss!r} is not callable")
            try:
                cache[loss] = adaptor.hessian_trace(model, ops, batches, function)
            except TunekitError:
                raise
            except Exception as exc:  # a loss that does not fit the data or the outputs
                raise DataError(f"the Hessian traces (hawq strategy) failed on the calibration "
                                f"data with loss {loss or 'cross-entropy'}: "
                                f"{type(exc).__name__}: {exc}; give labelled (inputs, labels) "
                                "batches the loss accepts, unlabelled batches (the loss is then "
                                "the distance to the FP32 outputs), or tuning.strategy.loss"
                                ) from exc
        return cache[loss]

    return hessian


__all__ = ["PROBE_BATCHES", "hessian_probe", "mse", "sensitivity_probe"]
