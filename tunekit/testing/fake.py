"""A framework-free adaptor whose accuracy, latency and op errors are formulas of the config.

A research and testing tool: strategies, objectives and the tuner run in milliseconds against a
model with a known answer ("int8 conv1 costs 20 points", "histogram calibration fixes fc1",
"bf16 is free") and without torch or TensorFlow. Nothing here measures anything real.

The accuracy of a config is ``base_accuracy`` minus one drop per op:

- fp32: no drop; bf16: ``bf16_drops[name]`` (default 0);
- int8: ``drops[name]`` (default 0), unless ``item_drops`` has an entry for one of the op's int8
  items, e.g. ``{("conv1", "algorithm", "histogram"): 0.0}``; with several matching entries the
  smallest wins (an op is as good as the item that fixes it best).

``predict`` turns that number into real Top-1 evidence: of the first ``n`` samples, exactly
``round(accuracy · n)`` are predicted right, for every ``n`` (so batching, and evaluating only a
prefix of the data, keep the modelled accuracy up to rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.data import batch_size, split_batch
from tunekit.errors import ConfigError, ModelError, NotSupportedError, TrialError
from tunekit.objective import Objective
from tunekit.space import INT8_ITEMS, OpConfig, OpKey, QuantConfig, TuningSpace, int8_options

#: The five tunable ops of the R1 digits CNN (examples/digits_pytorch), in graph order.
DIGITS_OPS: tuple[OpKey, ...] = (OpKey("conv1", "Conv2d"), OpKey("conv2", "Conv2d"),
                                 OpKey("conv3", "Conv2d"), OpKey("fc1", "Linear"),
                                 OpKey("fc2", "Linear"))

#: Modelled per-op latency of each precision (arbitrary units): int8 < bf16 < fp32.
LATENCIES: Mapping[str, float] = {"int8": 1.0, "bf16": 2.0, "fp32": 4.0}

_BYTES = {"int8": 1, "bf16": 2, "fp32": 4}
#: The calibration algorithms of the modelled framework (PyTorch's three).
_ALGORITHMS = ("minmax", "histogram", "percentile")
_APPROACHES = {"static": ("static",), "dynamic": ("dynamic",), "auto": ("static", "dynamic")}
#: The FP32 output every op "produces" in :meth:`FakeAdaptor.inspect`.
_REFERENCE = np.linspace(-1.0, 1.0, 64, dtype=np.float32)


@dataclass(frozen=True)
class FakeModel:
    """A model of the :class:`FakeAdaptor`: the config it was built with (``None`` = FP32) and
    the scale of its outputs, which stands for its weights: two FP32 models with other scales
    compute other outputs with the same predictions (the contract's ``other_model``)."""

    config: QuantConfig | None = None
    scale: float = 1.0


@dataclass
class _Calibrations:
    """What the fake keeps per model (its :meth:`~tunekit.adaptor.Adaptor.model_state`): the
    ``cache_dir`` of each :meth:`FakeAdaptor.calibrate` call, in order."""

    cache_dirs: list[Path | None] = field(default_factory=list)


def _scale(model: Any) -> float:
    """The output scale a candidate of ``model`` keeps (1 for anything but a :class:`FakeModel`:
    strategy tests pass ``None`` or a placeholder as the FP32 model)."""
    return model.scale if isinstance(model, FakeModel) else 1.0


def fake_data(samples: int = 1000, batch: int = 100) -> list[tuple[np.ndarray, np.ndarray]]:
    """Evaluation batches for :meth:`FakeAdaptor.predict`: ``(inputs (b, 1), labels (b,))``."""
    index = np.arange(samples)
    labels = index % FakeAdaptor.num_classes
    return [(index[i:i + batch, None].astype(np.float32), labels[i:i + batch])
            for i in range(0, samples, batch)]


def _options(approach: str) -> tuple[OpConfig, ...]:
    """The options of a fake op: every int8 item value of ``approach``, then bf16, then fp32."""
    if approach not in _APPROACHES:
        raise ConfigError("quantization.approach", f"must be one of {sorted(_APPROACHES)}, "
                                                   f"got {approach!r}")
    items = (INT8_ITEMS[item] for item in ("scheme", "granularity"))
    return (*int8_options(_APPROACHES[approach], *items, _ALGORITHMS), OpConfig("bf16"),
            OpConfig("fp32"))


class FakeAdaptor(Adaptor):
    """Pure-numpy adaptor over :class:`FakeModel` objects; see the module docstring.

    ``ops`` (default :data:`DIGITS_OPS`) is a list of :class:`OpKey` (each gets every int8 item value, bf16 and fp32) or a
    ready :class:`TuningSpace` (returned as is by :meth:`capabilities`). ``op_costs`` weighs ops
    in the latency and size formulas (default 1). ``fails(config)`` true makes
    :meth:`quantize` raise :class:`TrialError`, as a real adaptor does for a broken candidate.
    ``quantize_calls`` and ``predict_calls`` count the work a strategy caused;
    :meth:`calibrations` says how a model was calibrated.
    """

    model_suffix = ".json"
    num_classes: ClassVar[int] = 10

    def __init__(self, *, ops: Sequence[OpKey] | TuningSpace = DIGITS_OPS,
                 base_accuracy: float = 0.99,
                 drops: Mapping[str, float] | None = None,
                 bf16_drops: Mapping[str, float] | None = None,
                 item_drops: Mapping[tuple[str, str, str], float] | None = None,
                 op_costs: Mapping[str, float] | None = None,
                 fails: Callable[[QuantConfig], bool] | None = None) -> None:
        self.space = ops if isinstance(ops, TuningSpace) else None
        self.ops = list(ops.ops) if isinstance(ops, TuningSpace) else sorted(ops)
        self.base_accuracy = base_accuracy
        self.drops = dict(drops or {})
        self.bf16_drops = dict(bf16_drops or {})
        self.item_drops = dict(item_drops or {})
        self.op_costs = dict(op_costs or {})
        self.fails = fails
        names = {op.name for op in self.ops}
        unknown = (set(self.drops) | set(self.bf16_drops) | set(self.op_costs)
                   | {key[0] for key in self.item_drops}) - names
        if unknown:
            raise ValueError(f"drops or costs for unknown ops {sorted(unknown)}; ops: "
                             f"{', '.join(sorted(names))}")
        self.quantize_calls = 0
        self.predict_calls = 0

    # ------------------------------------------------------------------ the formulas

    def op_drop(self, op: OpKey, config: OpConfig) -> float:
        """The accuracy ``op`` loses when it runs in ``config``."""
        if config.precision == "fp32":
            return 0.0
        if config.precision == "bf16":
            return self.bf16_drops.get(op.name, 0.0)
        fixes = [self.item_drops[key] for item, value in config.items().items()
                 if (key := (op.name, item, value)) in self.item_drops]
        return min(fixes) if fixes else self.drops.get(op.name, 0.0)

    def accuracy(self, config: QuantConfig | None) -> float:
        """The modelled accuracy of ``config`` (``None`` = the FP32 model), clipped to [0, 1]."""
        if config is None:
            return self.base_accuracy
        loss = sum(self.op_drop(op, c) for op, c in config.ops.items())
        return min(1.0, max(0.0, self.base_accuracy - loss))

    def latency(self, model: FakeModel) -> float:
        """Modelled latency: per op, its cost times its precision's :data:`LATENCIES` entry."""
        return sum(self.op_costs.get(op.name, 1.0) * LATENCIES[precision]
                   for op, precision in self._precisions(model))

    def evaluate(self, config: QuantConfig, data: Iterable[DataBatch] | None = None) -> float:
        """Quantize and score ``config`` as the tuner would: Top-1 of :meth:`predict`.

        A ready accuracy function for :func:`tunekit.testing.run_strategy` that goes through
        the whole fake pipeline (so ``fails`` and the call counters apply).
        """
        correct = total = 0
        for outputs, labels in self.predict(self.quantize(FakeModel(), config, []),
                                            data if data is not None else fake_data()):
            correct += int((outputs.argmax(axis=1) == labels).sum())
            total += len(labels)
        return correct / total

    # ------------------------------------------------------------------ the Adaptor API

    def capabilities(self, model: Any, approach: str = "static") -> TuningSpace:
        if self.space is not None:
            return self.space
        options = _options(approach)
        return TuningSpace({op: options for op in self.ops})

    def calibrate(self, model: Any, space: TuningSpace, calib_data: Iterable[DataBatch], *,
                  cache_dir: Path | None = None) -> None:
        """Records the call for ``model`` (:meth:`calibrations`); fake candidates are formulas
        of the config and need no statistics."""
        self.model_state(model, _Calibrations).cache_dirs.append(cache_dir)

    def calibrations(self, model: Any) -> list[Path | None]:
        """The ``cache_dir`` of every :meth:`calibrate` call for ``model``, in order."""
        return list(self.model_state(model, _Calibrations).cache_dirs)

    def quantize(self, model: Any, config: QuantConfig,
                 calib_data: Iterable[DataBatch]) -> FakeModel:
        self.quantize_calls += 1
        if set(config.ops) != set(self.ops):
            raise ModelError(f"config ops {[str(op) for op in config.ops]} are not the "
                             f"adaptor's ops {[str(op) for op in self.ops]}")
        if self.fails is not None and self.fails(config):
            raise TrialError(f"fake quantization of {config.summary()} failed")
        return FakeModel(config, _scale(model))

    def predict(self, model: FakeModel,
                data: Iterable[DataBatch]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self.predict_calls += 1
        accuracy, seen = self.accuracy(model.config), 0
        for batch in data:
            labels = np.asarray(split_batch(batch)[1])
            if labels.ndim != 1 or labels.size and not 0 <= labels.min() <= labels.max() \
                    < self.num_classes:
                raise ValueError("FakeAdaptor.predict needs (inputs, labels) batches with class "
                                 f"ids in [0, {self.num_classes}), e.g. from fake_data()")
            index = np.arange(seen, seen + len(labels))
            # sample i is right iff it raises round(accuracy · i): round(accuracy · n) of any n
            right = (np.floor((index + 1) * accuracy + 0.5) - np.floor(index * accuracy + 0.5)) > 0
            predicted = np.where(right, labels, (labels + 1) % self.num_classes)
            yield np.eye(self.num_classes, dtype=np.float32)[predicted] * model.scale, labels
            seen += len(labels)

    def run_batch(self, model: FakeModel, inputs: Any) -> np.ndarray:
        """Cheap on purpose: time the modelled :meth:`latency`, not this."""
        return np.zeros((batch_size(inputs), self.num_classes), dtype=np.float32)

    def inspect(self, model: Any, candidate: FakeModel, ops: Sequence[OpKey],
                data: Iterable[DataBatch]) -> Mapping[OpKey, tuple[np.ndarray, np.ndarray]]:
        """Per op, a fixed FP32 output and the candidate's, whose MSE equals the op's drop."""
        configs = dict(self._configs(candidate))
        return {op: (_REFERENCE.copy(),
                     _REFERENCE + np.float32(math.sqrt(self.op_drop(op, configs[op]))))
                for op in ops}

    def model_size(self, model: FakeModel) -> int:
        """Modelled bytes: 1000 weights per unit of op cost, at the precision's width."""
        return int(sum(1000 * self.op_costs.get(op.name, 1.0) * _BYTES[precision]
                       for op, precision in self._precisions(model)))

    def save(self, candidate: FakeModel, config: QuantConfig, path: Path) -> None:
        Path(path).write_text(config.to_json())

    def load(self, model: Any, config: QuantConfig, path: Path) -> FakeModel:
        saved = QuantConfig.from_json(Path(path).read_text())
        if saved != config:
            raise ModelError(f"{path} holds a model built with another config than the recipe's")
        return FakeModel(saved, _scale(model))

    def _configs(self, model: FakeModel) -> Iterator[tuple[OpKey, OpConfig]]:
        if model.config is None:
            return ((op, OpConfig("fp32")) for op in self.ops)
        return iter(model.config.ops.items())

    def _precisions(self, model: FakeModel) -> Iterator[tuple[OpKey, str]]:
        return ((op, config.precision) for op, config in self._configs(model))


class ModelledLatency(Objective):
    """The :class:`FakeAdaptor`'s latency formula as an objective: deterministic, unlike timing."""

    direction = "minimize"
    costly = False
    unit = " units"

    def measure(self, adaptor: Adaptor, model: Any, data: Iterable[DataBatch]) -> float:
        if not isinstance(adaptor, FakeAdaptor):
            raise NotSupportedError(f"ModelledLatency needs a FakeAdaptor, not "
                                    f"{type(adaptor).__name__}")
        return adaptor.latency(model)


__all__ = ["DIGITS_OPS", "LATENCIES", "FakeAdaptor", "FakeModel", "ModelledLatency",
           "fake_data"]
