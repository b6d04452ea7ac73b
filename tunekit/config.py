"""YAML → a frozen, validated :class:`TuneSpec`.

Every error names the YAML path of the bad field and what is valid there, so a typo costs a
glance, not a debugging session. Plugin names are checked against the installed entry points here,
before any model or data is loaded. User code (``package.module:attr``) is only *named* here;
:mod:`tunekit.references` imports it.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunekit import plugins
from tunekit.criterion import AccuracyCriterion
from tunekit.errors import ConfigError, PluginError
from tunekit.space import INT8_ITEMS, PRECISIONS, OpRule

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
    strategy: PluginSpec = PluginSpec("basic")
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


# --------------------------------------------------------------------------- raw YAML handling

SECTIONS: Mapping[str, tuple[str, ...]] = {
    "": ("model", "quantization", "evaluation", "tuning", "graph_optimization", "benchmark",
         "data"),
    "data": ("label_key", "pairs"),
    "model": ("framework", "path", "factory", "options"),
    "quantization": ("approach", "calibration", "op_rules", "training"),
    "quantization.calibration": ("data", "sampling_size"),
    "evaluation": ("data", "metric", "eval_func", "early_reject"),
    "tuning": ("strategy", "accuracy_criterion", "objective", "exit_policy", "random_seed",
               "workspace", "storage", "study", "workers", "heartbeat"),
    "tuning.accuracy_criterion": ("relative", "absolute", "higher_is_better"),
    "tuning.exit_policy": ("timeout", "max_trials", "trial_timeout", "failure_share"),
    "tuning.workspace": ("path", "resume"),
    "graph_optimization": ("precisions", "passes"),
    "benchmark": ("batch_sizes", "warmup", "iterations", "rounds", "threads", "instances",
                  "cores_per_instance", "processes"),
}
APPROACHES = ("static", "dynamic", "auto", "qat")
#: The seed's (Intel Neural Compressor's) names of approaches, accepted as aliases.
APPROACH_ALIASES: Mapping[str, str] = {"post_training_static_quant": "static",
                                       "post_training_dynamic_quant": "dynamic",
                                       "post_training_auto_quant": "auto",
                                       "quant_aware_training": "qat"}


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML config file, with errors that name the file and the line."""
    if not path.is_file():
        raise ConfigError("", f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError("", f"{path} is not valid YAML{where}: {problem}") from exc
    if data is None:
        raise ConfigError("", f"{path} is empty; see the examples/ folder for a config")
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} must hold a mapping of sections "
                              f"({', '.join(SECTIONS[''])}), not a {type(data).__name__}")
    return data


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set key.path=value`` overrides; values are parsed as YAML scalars/flow values."""
    data = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"{item!r} is not of the form key.path=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(key, f"the value {text!r} given with --set is not valid YAML") from exc
        node = data
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(".".join(parts[: i + 1]), "is not a section; cannot --set below it")
            node = child
        node[parts[-1]] = value
    return data


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _section(raw: Any, path: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(path, f"must be a mapping with keys {', '.join(SECTIONS[path])}, "
                                f"got {type(raw).__name__} {raw!r}")
    for key in raw:
        if key not in SECTIONS[path]:
            close = difflib.get_close_matches(str(key), SECTIONS[path], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(_join(path, str(key)),
                              f"unknown key{hint}; valid keys: {', '.join(SECTIONS[path])}")
    return raw


def _typed(raw: Mapping[str, Any], key: str, path: str, kind: type | tuple[type, ...],
           default: Any = None, required: bool = False) -> Any:
    where = _join(path, key)
    if key not in raw or raw[key] is None:
        if required:
            raise ConfigError(where, "is required")
        return default
    value = raw[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(where, f"must be {names}, got {type(value).__name__} {value!r}")
    return value


def _choice(value: str, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise ConfigError(where, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _reference(raw: Mapping[str, Any], key: str, path: str, required: bool = False) -> str | None:
    ref = _typed(raw, key, path, str, required=required)
    if ref is not None and (":" not in ref or ref.startswith(":") or ref.endswith(":")):
        raise ConfigError(_join(path, key), f"{ref!r} is not a 'package.module:attribute' reference")
    return ref


def _plugin(raw: Any, where: str, group: str, check_installed: bool) -> PluginSpec:
    """A plugin given as a bare name or as ``{name: ..., <kwargs>}`` (``weight`` for objectives)."""
    if isinstance(raw, str):
        name, params, weight = raw, {}, 1.0
    elif isinstance(raw, dict):
        params = dict(raw)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(_join(where, "name"), "is required and must be a plugin name")
        weight = params.pop("weight", 1.0) if group == "tunekit.objectives" else 1.0
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ConfigError(_join(where, "weight"), f"must be a number > 0, got {weight!r}")
    else:
        raise ConfigError(where, f"must be a plugin name or {{name: ..., ...}}, got {raw!r}")
    if check_installed:
        try:
            plugins.load(group, name)
        except PluginError as exc:
            raise ConfigError(_join(where, "name") if isinstance(raw, dict) else where,
                              str(exc)) from exc
    return PluginSpec(name, params, float(weight))


def _op_rule(raw: Any, where: str) -> OpRule:
    if not isinstance(raw, dict):
        raise ConfigError(where, f"must be a mapping like {{type: Linear, allow: [int8, fp32]}}, "
                                 f"got {raw!r}")
    valid = ("type", "name", "regex", "allow", *INT8_ITEMS)
    for key in raw:
        if key not in valid:
            raise ConfigError(_join(where, str(key)), f"unknown key; valid keys: {', '.join(valid)}")
    selectors = [k for k in ("type", "name", "regex") if k in raw]
    if len(selectors) != 1:
        raise ConfigError(where, "needs exactly one of 'type', 'name' or 'regex' to select ops")
    selector = selectors[0]
    if not isinstance(raw[selector], str):
        raise ConfigError(_join(where, selector), "must be a string")
    if selector == "regex":
        import re

        try:
            re.compile(raw["regex"])
        except re.error as exc:
            raise ConfigError(_join(where, "regex"), f"is not a valid regular expression: {exc}") from exc
    allow = None
    if "allow" in raw:
        allow = tuple(_string_list(raw["allow"], _join(where, "allow"), PRECISIONS))
    restrict = {item: tuple(_string_list(raw[item], _join(where, item), INT8_ITEMS[item]))
                for item in INT8_ITEMS if item in raw}
    return OpRule(**{selector: raw[selector]}, allow=allow, restrict=restrict)


def _string_list(raw: Any, where: str, choices: Sequence[str]) -> list[str]:
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ConfigError(where, f"must be a non-empty list drawn from {', '.join(choices)}")
    for v in values:
        _choice(v, choices, where)
    return values


# --------------------------------------------------------------------------- sections


def _model(raw: Any, base_dir: Path, check: bool) -> ModelSpec:
    sec = _section(raw, "model")
    if not sec:
        raise ConfigError("model", "is required: give model.framework and model.path or model.factory")
    framework = _typed(sec, "framework", "model", str, required=True)
    if check:
        try:
            plugins.load("tunekit.adaptors", framework)
        except PluginError as exc:
            raise ConfigError("model.framework", str(exc)) from exc
    path = _typed(sec, "path", "model", str)
    factory = _reference(sec, "factory", "model")
    if (path is None) == (factory is None):
        raise ConfigError("model", "give exactly one of 'path' (a model file) or 'factory' "
                                   "(package.module:function returning the model)")
    options = _typed(sec, "options", "model", dict, default={})
    return ModelSpec(framework, (base_dir / path) if path else None, factory, options)


def _quantization(raw: Any) -> QuantizationSpec:
    sec = _section(raw, "quantization")
    approach = _typed(sec, "approach", "quantization", str, "static")
    approach = _choice(APPROACH_ALIASES.get(approach, approach), APPROACHES,
                       "quantization.approach")
    calib = _section(sec.get("calibration"), "quantization.calibration")
    data = _reference(calib, "data", "quantization.calibration")
    size = _typed(calib, "sampling_size", "quantization.calibration", int, 100)
    if size is not None and size <= 0:
        raise ConfigError("quantization.calibration.sampling_size", f"must be > 0, got {size}")
    rules_raw = _typed(sec, "op_rules", "quantization", list, [])
    rules = tuple(_op_rule(r, f"quantization.op_rules[{i}]") for i, r in enumerate(rules_raw))
    return QuantizationSpec(approach, data, size, rules, _training(sec.get("training"), approach))


def _training(raw: Any, approach: str) -> TrainingSpec | None:
    """``quantization.training: {func: module:train, <keywords for it>}``; required by, and
    only meaningful for, approach qat."""
    where = "quantization.training"
    if raw is None:
        if approach == "qat":
            raise ConfigError(f"{where}.func", "is required with approach qat: a "
                                               "'package.module:function' that trains the "
                                               "fake-quantized model it is given (from Python: "
                                               "tunekit.tune(..., train_func=...))")
        return None
    if approach != "qat":
        raise ConfigError(where, f"trains a model for approach qat only; the approach is "
                                 f"{approach!r} (set quantization.approach: qat)")
    if isinstance(raw, str):
        raw = {"func": raw}
    if not isinstance(raw, dict):
        raise ConfigError(where, f"must be {{func: package.module:function, <its keywords>}}, "
                                 f"got {raw!r}")
    params = {k: v for k, v in raw.items() if k != "func"}
    func = _reference(raw, "func", where, required=True)
    assert func is not None
    return TrainingSpec(func, params)


def _evaluation(raw: Any, check: bool) -> EvaluationSpec:
    sec = _section(raw, "evaluation")
    eval_func = _reference(sec, "eval_func", "evaluation")
    data = _reference(sec, "data", "evaluation")
    metric = None
    if "metric" in sec and sec["metric"] is not None:
        if eval_func is not None:
            raise ConfigError("evaluation", "give either 'metric' (with 'data') or 'eval_func', not both")
        metric = _plugin(sec["metric"], "evaluation.metric", "tunekit.metrics", check)
        if data is None:
            raise ConfigError("evaluation.data", "is required with a metric: the dataloader "
                                                 "of (inputs, labels) batches to evaluate on")
    early_reject = _typed(sec, "early_reject", "evaluation", bool, True)
    return EvaluationSpec(data, metric, eval_func, early_reject)


def _criterion(raw: Any) -> tuple[AccuracyCriterion, bool]:
    path = "tuning.accuracy_criterion"
    sec = _section(raw, path)
    relative = _typed(sec, "relative", path, float)
    absolute = _typed(sec, "absolute", path, float)
    higher = _typed(sec, "higher_is_better", path, bool)
    if relative is not None and absolute is not None:
        raise ConfigError(path, "give either 'relative' or 'absolute', not both")
    if relative is None and absolute is None:
        relative = 0.01
    for key, value in (("relative", relative), ("absolute", absolute)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ConfigError(_join(path, key), f"must be a finite number ≥ 0, got {value}")
    if relative is not None and relative >= 1:
        raise ConfigError(_join(path, "relative"), f"is a fraction (0.01 = 1%), got {relative}")
    criterion = AccuracyCriterion(relative=relative, absolute=absolute,
                                  higher_is_better=True if higher is None else higher)
    return criterion, higher is not None


def _tuning(raw: Any, check: bool) -> TuningSpec:
    sec = _section(raw, "tuning")
    strategy = _plugin(sec.get("strategy", "basic"), "tuning.strategy", "tunekit.strategies", check)
    criterion, direction_given = _criterion(sec.get("accuracy_criterion"))
    objective_raw = sec.get("objective", "performance")
    items = objective_raw if isinstance(objective_raw, list) else [objective_raw]
    if not items:
        raise ConfigError("tuning.objective", "must name at least one objective")
    objectives = tuple(_plugin(o, f"tuning.objective[{i}]" if isinstance(objective_raw, list)
                               else "tuning.objective", "tunekit.objectives", check)
                       for i, o in enumerate(items))
    exit_sec = _section(sec.get("exit_policy"), "tuning.exit_policy")
    timeout = _typed(exit_sec, "timeout", "tuning.exit_policy", float, 0.0)
    max_trials = _typed(exit_sec, "max_trials", "tuning.exit_policy", int, 100)
    if timeout < 0 or not math.isfinite(timeout):
        raise ConfigError("tuning.exit_policy.timeout", f"must be ≥ 0 seconds (0 = stop at the "
                                                        f"first model that meets the goal), got {timeout}")
    if max_trials <= 0:
        raise ConfigError("tuning.exit_policy.max_trials", f"must be > 0, got {max_trials}")
    trial_timeout = _typed(exit_sec, "trial_timeout", "tuning.exit_policy", float, 0.0)
    if trial_timeout < 0 or not math.isfinite(trial_timeout):
        raise ConfigError("tuning.exit_policy.trial_timeout", f"must be ≥ 0 seconds per trial "
                                                              f"(0 = no limit), got {trial_timeout}")
    failure_share = _typed(exit_sec, "failure_share", "tuning.exit_policy", float, 1.0)
    if not 0 < failure_share <= 1:
        raise ConfigError("tuning.exit_policy.failure_share", f"is the share of failed trials "
                          f"that stops the tuning, in (0, 1], got {failure_share}")
    seed = _typed(sec, "random_seed", "tuning", int, DEFAULT_SEED)
    ws = _section(sec.get("workspace"), "tuning.workspace")
    workspace = Path(_typed(ws, "path", "tuning.workspace", str, "tunekit_workspace"))
    resume = _typed(ws, "resume", "tuning.workspace", bool, False)
    storage = _typed(sec, "storage", "tuning", str)
    study = _typed(sec, "study", "tuning", str)
    workers = _typed(sec, "workers", "tuning", int, 0)
    if workers < 0:
        raise ConfigError("tuning.workers", f"must be ≥ 0 local worker processes, got {workers}")
    heartbeat = _typed(sec, "heartbeat", "tuning", int, 10)
    if heartbeat < 1:
        raise ConfigError("tuning.heartbeat", f"must be ≥ 1 second, got {heartbeat}")
    return TuningSpec(strategy, criterion, direction_given, objectives, timeout, max_trials, seed,
                      workspace, resume, storage, trial_timeout=trial_timeout, study=study,
                      workers=workers, heartbeat=heartbeat, failure_share=failure_share,
                      strategy_given="strategy" in sec)


def _graph_optimization(raw: Any) -> dict[str, Any]:
    sec = dict(_section(raw, "graph_optimization"))
    if "precisions" in sec:  # a single name is a list of one, as elsewhere in the YAML
        sec["precisions"] = _string_list(sec["precisions"], "graph_optimization.precisions",
                                         ("bf16", "fp32"))
    return sec


def _benchmark(raw: Any) -> BenchmarkSpec:
    sec = _section(raw, "benchmark")

    def count(key: str, default: int | None, minimum: int) -> Any:
        value = _typed(sec, key, "benchmark", int, default)
        if value is not None and value < minimum:
            raise ConfigError(f"benchmark.{key}", f"must be an integer ≥ {minimum}, got {value}")
        return value

    sizes = sec.get("batch_sizes")
    sizes = [sizes] if isinstance(sizes, int) and not isinstance(sizes, bool) else sizes
    if sizes is not None and (not isinstance(sizes, list) or not sizes or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)):
        raise ConfigError("benchmark.batch_sizes", f"must be a list of positive integers, "
                                                   f"got {sizes!r}")
    return BenchmarkSpec(None if sizes is None else tuple(sizes),
                         count("warmup", 10, 0), count("iterations", 20, 1),
                         count("rounds", 5, 1), count("threads", None, 1),
                         count("instances", 1, 1), count("cores_per_instance", None, 1),
                         count("processes", 3, 1))


def parse(raw: Mapping[str, Any], base_dir: Path = Path("."), check_plugins: bool = True,
          require_model: bool = True) -> TuneSpec:
    """Validate a config mapping (already read from YAML) into a :class:`TuneSpec`."""
    sec = _section(dict(raw), "")
    model = _model(sec.get("model"), base_dir, check_plugins) if require_model or "model" in sec \
        else ModelSpec("pytorch")
    return TuneSpec(model=model, quantization=_quantization(sec.get("quantization")),
                    evaluation=_evaluation(sec.get("evaluation"), check_plugins),
                    tuning=_tuning(sec.get("tuning"), check_plugins),
                    graph_optimization=_graph_optimization(sec.get("graph_optimization")),
                    benchmark=_benchmark(sec.get("benchmark")), data=_data(sec.get("data")),
                    base_dir=base_dir, source=sec)


def _data(raw: Any) -> DataSpec:
    sec = _section(raw, "data")
    label_key = _typed(sec, "label_key", "data", str, "labels")
    pairs = _choice(_typed(sec, "pairs", "data", str, "auto"), ("auto", "inputs", "labelled"),
                    "data.pairs")
    return DataSpec(label_key, pairs)


def load(path: str | Path, overrides: Sequence[str] = ()) -> TuneSpec:
    """Read, override and validate a YAML config file."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), overrides)
    return parse(raw, base_dir=path.resolve().parent)
