"""The validated configuration: frozen dataclasses, one per YAML section.

They live apart from the YAML reading (:mod:`tunekit.config`) and its schema walker
(:mod:`tunekit.config_schema`) because most of tunekit only *reads* a spec: the tuner, the
benchmark and the workers import these types without the parsing that builds them.
:mod:`tunekit.config` re-exports them, so ``tunekit.config.TuneSpec`` stays the public name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunekit.criterion import AccuracyCriterion
from tunekit.space import OpRule

DEFAULT_SEED = 1978


@dataclass(frozen=True)
class PluginSpec:
    """A plugin named in the config: entry-point name plus constructor keywords."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0


@dataclass(frozen=True)
class ModelSpec:
    framework: str
    path: Path | None = None
    factory: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingSpec:
    """The user's training function for quantization-aware training: ``func(model, **params)``
    trains the fake-quantized model it is given (``params`` set its budget, e.g. ``epochs``)."""

    func: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QuantizationSpec:
    approach: str = "static"
    calib_data: str | None = None
    sampling_size: int | None = 100
    op_rules: tuple[OpRule, ...] = ()
    training: TrainingSpec | None = None


@dataclass(frozen=True)
class EvaluationSpec:
    data: str | None = None
    metric: PluginSpec | None = None
    eval_func: str | None = None
    #: stop scoring a candidate once it cannot meet the goal (metrics with a bound only)
    early_reject: bool = True


@dataclass(frozen=True)
class DataSpec:
    """How batches are read (see :mod:`tunekit.batches`): the key of the labels in mapping
    batches, and how a flat tuple is read (``auto``, ``inputs``: all inputs, ``labelled``: the
    last element is the labels)."""

    label_key: str = "labels"
    pairs: str = "auto"


@dataclass(frozen=True)
class TuningSpec:
    strategy: PluginSpec = PluginSpec("auto")
    criterion: AccuracyCriterion = AccuracyCriterion(relative=0.01)
    criterion_direction_given: bool = False
    objectives: tuple[PluginSpec, ...] = (PluginSpec("performance"),)
    timeout: float = 0.0
    max_trials: int = 100
    seed: int = DEFAULT_SEED
    workspace: Path = Path("tunekit_workspace")
    resume: bool = False
    storage: str | None = None
    trial_timeout: float = 0.0  # seconds one trial may take (0: no limit); see tunekit.watchdog
    failure_share: float = 1.0  # stop once this share of ≥ 3 trials failed; see tunekit.failures
    # distributed tuning (docs/distributed.md): a study name makes this run the coordinator
    study: str | None = None
    workers: int = 0  # local worker processes to start (0: only workers started elsewhere)
    heartbeat: int = 10  # seconds between a worker's heartbeats
    # whether the YAML names the strategy (graph optimization's AMP tuning defaults to "amp")
    strategy_given: bool = False

    @property
    def distributed(self) -> bool:
        """Whether trials go to workers through the storage instead of running here."""
        return self.study is not None or self.workers > 0


@dataclass(frozen=True)
class BenchmarkSpec:
    """``tunekit benchmark`` settings: each batch size is timed in ``rounds`` rounds that
    alternate FP32 and tuned model (``iterations`` timed calls each, after ``warmup``), in
    ``instances`` processes on disjoint core sets of ``cores_per_instance`` cores; all of it
    ``processes`` times over, each time in fresh processes (see tunekit.benchmark.instances)."""

    #: None: the batch size the tuning timed, and 1 (see tunekit.benchmark.measure)
    batch_sizes: tuple[int, ...] | None = None
    warmup: int = 10
    iterations: int = 20
    rounds: int = 5
    threads: int | None = None
    instances: int = 1
    cores_per_instance: int | None = None
    processes: int = 3


@dataclass(frozen=True)
class TuneSpec:
    """A validated configuration. ``base_dir`` is where ``module:attr`` references resolve."""

    model: ModelSpec
    quantization: QuantizationSpec = QuantizationSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    tuning: TuningSpec = TuningSpec()
    graph_optimization: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path = Path(".")
    benchmark: BenchmarkSpec = BenchmarkSpec()
    data: DataSpec = DataSpec()
    #: the config mapping this spec was parsed from (overrides applied): what distributed
    #: workers rebuild the same model, data and evaluation from
    source: Mapping[str, Any] = field(default_factory=dict)
