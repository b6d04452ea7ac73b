"""YAML → a frozen, validated :class:`TuneSpec`.

Every error names the YAML path of the bad field and what is valid there, so a typo costs a
glance, not a debugging session. Plugin names are checked against the installed entry points here,
before any model or data is loaded. User code (``package.module:attr``) is only *named* here;
:mod:`tunekit.references` imports it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tunekit import plugins
from tunekit.config_schema import (SECTIONS, choice, join, op_rule, plugin, reference, section,
                                   string_list, typed)
from tunekit.config_spec import (DEFAULT_SEED, BenchmarkSpec, DataSpec, EvaluationSpec, ModelSpec,
                                 PluginSpec, QuantizationSpec, TrainingSpec, TuneSpec, TuningSpec)
from tunekit.criterion import AccuracyCriterion
from tunekit.errors import ConfigError, PluginError

__all__ = ["APPROACHES", "APPROACH_ALIASES", "DEFAULT_SEED", "SECTIONS", "BenchmarkSpec",
           "DataSpec", "EvaluationSpec", "ModelSpec", "PluginSpec", "QuantizationSpec",
           "TrainingSpec", "TuneSpec", "TuningSpec", "apply_overrides", "load", "parse",
           "read_yaml"]

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



# --------------------------------------------------------------------------- sections


def _model(raw: Any, base_dir: Path, check: bool) -> ModelSpec:
    sec = section(raw, "model")
    if not sec:
        raise ConfigError("model", "is required: give model.framework and model.path or model.factory")
    framework = typed(sec, "framework", "model", str, required=True)
    if check:
        try:
            plugins.load("tunekit.adaptors", framework)
        except PluginError as exc:
            raise ConfigError("model.framework", str(exc)) from exc
    path = typed(sec, "path", "model", str)
    factory = reference(sec, "factory", "model")
    if (path is None) == (factory is None):
        raise ConfigError("model", "give exactly one of 'path' (a model file) or 'factory' "
                                   "(package.module:function returning the model)")
    options = typed(sec, "options", "model", dict, default={})
    return ModelSpec(framework, (base_dir / path) if path else None, factory, options)


def _quantization(raw: Any) -> QuantizationSpec:
    sec = section(raw, "quantization")
    approach = typed(sec, "approach", "quantization", str, "static")
    approach = choice(APPROACH_ALIASES.get(approach, approach), APPROACHES,
                       "quantization.approach")
    calib = section(sec.get("calibration"), "quantization.calibration")
    data = reference(calib, "data", "quantization.calibration")
    size = typed(calib, "sampling_size", "quantization.calibration", int, 100)
    if size is not None and size <= 0:
        raise ConfigError("quantization.calibration.sampling_size", f"must be > 0, got {size}")
    rules_raw = typed(sec, "op_rules", "quantization", list, [])
    rules = tuple(op_rule(r, f"quantization.op_rules[{i}]") for i, r in enumerate(rules_raw))
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
    func = reference(raw, "func", where, required=True)
    assert func is not None
    return TrainingSpec(func, params)


def _evaluation(raw: Any, check: bool) -> EvaluationSpec:
    sec = section(raw, "evaluation")
    eval_func = reference(sec, "eval_func", "evaluation")
    data = reference(sec, "data", "evaluation")
    metric = None
    if "metric" in sec and sec["metric"] is not None:
        if eval_func is not None:
            raise ConfigError("evaluation", "give either 'metric' (with 'data') or 'eval_func', not both")
        metric = plugin(sec["metric"], "evaluation.metric", "tunekit.metrics", check)
        if data is None:
            raise ConfigError("evaluation.data", "is required with a metric: the dataloader "
                                                 "of (inputs, labels) batches to evaluate on")
    early_reject = typed(sec, "early_reject", "evaluation", bool, True)
    return EvaluationSpec(data, metric, eval_func, early_reject)


def _criterion(raw: Any) -> tuple[AccuracyCriterion, bool]:
    path = "tuning.accuracy_criterion"
    sec = section(raw, path)
    relative = typed(sec, "relative", path, float)
    absolute = typed(sec, "absolute", path, float)
    higher = typed(sec, "higher_is_better", path, bool)
    if relative is not None and absolute is not None:
        raise ConfigError(path, "give either 'relative' or 'absolute', not both")
    if relative is None and absolute is None:
        relative = 0.01
    for key, value in (("relative", relative), ("absolute", absolute)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ConfigError(join(path, key), f"must be a finite number ≥ 0, got {value}")
    if relative is not None and relative >= 1:
        raise ConfigError(join(path, "relative"), f"is a fraction (0.01 = 1%), got {relative}")
    criterion = AccuracyCriterion(relative=relative, absolute=absolute,
                                  higher_is_better=True if higher is None else higher)
    return criterion, higher is not None


def _tuning(raw: Any, check: bool) -> TuningSpec:
    sec = section(raw, "tuning")
    strategy = plugin(sec.get("strategy", "auto"), "tuning.strategy", "tunekit.strategies", check)
    criterion, direction_given = _criterion(sec.get("accuracy_criterion"))
    objective_raw = sec.get("objective", "performance")
    items = objective_raw if isinstance(objective_raw, list) else [objective_raw]
    if not items:
        raise ConfigError("tuning.objective", "must name at least one objective")
    objectives = tuple(plugin(o, f"tuning.objective[{i}]" if isinstance(objective_raw, list)
                               else "tuning.objective", "tunekit.objectives", check)
                       for i, o in enumerate(items))
    exit_sec = section(sec.get("exit_policy"), "tuning.exit_policy")
    timeout = typed(exit_sec, "timeout", "tuning.exit_policy", float, 0.0)
    max_trials = typed(exit_sec, "max_trials", "tuning.exit_policy", int, 100)
    if timeout < 0 or not math.isfinite(timeout):
        raise ConfigError("tuning.exit_policy.timeout", f"must be ≥ 0 seconds (0 = stop at the "
                                                        f"first model that meets the goal), got {timeout}")
    if max_trials <= 0:
        raise ConfigError("tuning.exit_policy.max_trials", f"must be > 0, got {max_trials}")
    trial_timeout = typed(exit_sec, "trial_timeout", "tuning.exit_policy", float, 0.0)
    if trial_timeout < 0 or not math.isfinite(trial_timeout):
        raise ConfigError("tuning.exit_policy.trial_timeout", f"must be ≥ 0 seconds per trial "
                                                              f"(0 = no limit), got {trial_timeout}")
    failure_share = typed(exit_sec, "failure_share", "tuning.exit_policy", float, 1.0)
    if not 0 < failure_share <= 1:
        raise ConfigError("tuning.exit_policy.failure_share", f"is the share of failed trials "
                          f"that stops the tuning, in (0, 1], got {failure_share}")
    seed = typed(sec, "random_seed", "tuning", int, DEFAULT_SEED)
    ws = section(sec.get("workspace"), "tuning.workspace")
    workspace = Path(typed(ws, "path", "tuning.workspace", str, "tunekit_workspace"))
    resume = typed(ws, "resume", "tuning.workspace", bool, False)
    storage = typed(sec, "storage", "tuning", str)
    study = typed(sec, "study", "tuning", str)
    workers = typed(sec, "workers", "tuning", int, 0)
    if workers < 0:
        raise ConfigError("tuning.workers", f"must be ≥ 0 local worker processes, got {workers}")
    heartbeat = typed(sec, "heartbeat", "tuning", int, 10)
    if heartbeat < 1:
        raise ConfigError("tuning.heartbeat", f"must be ≥ 1 second, got {heartbeat}")
    return TuningSpec(strategy, criterion, direction_given, objectives, timeout, max_trials, seed,
                      workspace, resume, storage, trial_timeout=trial_timeout, study=study,
                      workers=workers, heartbeat=heartbeat, failure_share=failure_share,
                      strategy_given="strategy" in sec)


def _graph_optimization(raw: Any) -> dict[str, Any]:
    sec = dict(section(raw, "graph_optimization"))
    if "precisions" in sec:  # a single name is a list of one, as elsewhere in the YAML
        sec["precisions"] = string_list(sec["precisions"], "graph_optimization.precisions",
                                         ("bf16", "fp32"))
    return sec


def _benchmark(raw: Any) -> BenchmarkSpec:
    sec = section(raw, "benchmark")

    def count(key: str, default: int | None, minimum: int) -> Any:
        value = typed(sec, key, "benchmark", int, default)
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
    sec = section(dict(raw), "")
    model = _model(sec.get("model"), base_dir, check_plugins) if require_model or "model" in sec \
        else ModelSpec("pytorch")
    return TuneSpec(model=model, quantization=_quantization(sec.get("quantization")),
                    evaluation=_evaluation(sec.get("evaluation"), check_plugins),
                    tuning=_tuning(sec.get("tuning"), check_plugins),
                    graph_optimization=_graph_optimization(sec.get("graph_optimization")),
                    benchmark=_benchmark(sec.get("benchmark")), data=_data(sec.get("data")),
                    base_dir=base_dir, source=sec)


def _data(raw: Any) -> DataSpec:
    sec = section(raw, "data")
    label_key = typed(sec, "label_key", "data", str, "labels")
    pairs = choice(typed(sec, "pairs", "data", str, "auto"), ("auto", "inputs", "labelled"),
                    "data.pairs")
    return DataSpec(label_key, pairs)


def load(path: str | Path, overrides: Sequence[str] = ()) -> TuneSpec:
    """Read, override and validate a YAML config file."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), overrides)
    return parse(raw, base_dir=path.resolve().parent)
