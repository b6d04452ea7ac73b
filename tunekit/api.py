"""The Python API (`tunekit.tune`, `tunekit.load`) and the assembly of a tuning from a config.

Both doors lead to the same :class:`~tunekit.tuner.Tuner`: the CLI resolves the YAML's references
to objects, the Python API receives the objects; everything else is shared.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

from tunekit import config as config_module
from tunekit import plugins
from tunekit.adaptor import Adaptor
from tunekit.config import TuneSpec
from tunekit.data import require_batches, take_samples
from tunekit.errors import ConfigError
from tunekit.evaluate import Evaluator
from tunekit.metric import Metric
from tunekit.progress import trial_lines
from tunekit.references import call_user, data_source, resolve
from tunekit.result import TuneResult, class_path, load_recipe, recipe_config
from tunekit.training import TrainingCall
from tunekit.tuner import Parts, Tuner

log = logging.getLogger("tunekit")

#: ``tune(**kw)`` keywords → their YAML path.
KEYWORDS: Mapping[str, str] = {
    "framework": "model.framework",
    "approach": "quantization.approach",
    "op_rules": "quantization.op_rules",
    "sampling_size": "quantization.calibration.sampling_size",
    "strategy": "tuning.strategy",
    "accuracy_criterion": "tuning.accuracy_criterion",
    "objective": "tuning.objective",
    "exit_policy": "tuning.exit_policy",
    "max_trials": "tuning.exit_policy.max_trials",
    "timeout": "tuning.exit_policy.timeout",
    "trial_timeout": "tuning.exit_policy.trial_timeout",
    "failure_share": "tuning.exit_policy.failure_share",
    "random_seed": "tuning.random_seed",
    "workspace": "tuning.workspace.path",
    "resume": "tuning.workspace.resume",
    "storage": "tuning.storage",
    "label_key": "data.label_key",
    "pairs": "data.pairs",
}


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at the dotted YAML ``path`` of a raw config, creating sections on the way
    (how keyword arguments of :func:`tune` and ``optimize_graph`` land in the config)."""
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def guess_framework(model: Any) -> str:
    """The name of the installed adaptor that claims ``model`` (see :meth:`Adaptor.handles`).

    Adaptors whose entry point names a package the model's class is built from (the top-level
    packages of its MRO: ``torch`` for any ``nn.Module`` subclass) are asked first, the others
    only when none of those claims it: a Keras model thus never makes the PyTorch adaptor import
    torch. An adaptor that fails to load claims nothing (it could not tune the model either).
    """
    values = {p.name: p.value for p in plugins.installed("tunekit.adaptors")}
    # "tunekit" is in every built-in entry point: a tunekit class tells nothing
    packages = {cls.__module__.split(".")[0] for cls in type(model).__mro__} - {"builtins",
                                                                                 "tunekit"}
    likely = [name for name, value in values.items() if any(p in value for p in packages)]
    for group in (likely, [name for name in values if name not in likely]):
        claims = [name for name in group if _claims(name, model)]
        if len(claims) > 1:
            raise ConfigError("framework", f"the adaptors {', '.join(claims)} all claim a "
                                           f"{type(model).__name__}; pass framework= (one of them)")
        if claims:
            return claims[0]
    shown = repr(str(model)) if isinstance(model, (str, PathLike)) else \
        f"a {type(model).__module__}.{type(model).__qualname__}"
    raise ConfigError("framework", f"no installed adaptor handles {shown}; pass framework= "
                                   f"(installed adaptors: {', '.join(values) or 'none'})")


def _claims(name: str, model: Any) -> bool:
    try:
        return bool(plugins.load("tunekit.adaptors", name).handles(model))
    except Exception as exc:  # noqa: BLE001 - a broken plugin claims nothing
        log.debug("adaptor %r cannot answer whether it handles the model: %s", name, exc)
        return False


def raw_config(config: str | Path | Mapping[str, Any] | None) -> tuple[dict[str, Any], Path]:
    """A ``config=`` argument (YAML path, mapping or None) as a raw mapping the caller may
    change, and the folder its ``module:attr`` references resolve against."""
    if config is None:
        return {}, Path.cwd()
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config)), Path.cwd()
    path = Path(config)
    return config_module.read_yaml(path), path.resolve().parent


def tune(model: Any, calib_data: Iterable[Any] | None = None, *,
         eval_data: Iterable[Any] | None = None, metric: Metric | str | Mapping[str, Any] | None = None,
         eval_func: Callable[[Any], Any] | None = None,
         train_func: Callable[..., Any] | None = None,
         config: str | Path | Mapping[str, Any] | None = None, quiet: bool = False,
         **kw: Any) -> TuneResult:
    """Tune ``model`` to the fastest low-precision model that meets the accuracy goal.

    One line per trial goes to stderr, as from the CLI, unless ``quiet`` or the program set up
    logging itself (a handler on the root or ``tunekit`` logger: then that decides).

    ``config`` is a YAML path or mapping of the same schema as the CLI's (its model and data
    references are ignored in favour of the objects given here); keywords (``strategy``,
    ``accuracy_criterion``, ``max_trials``, ``workspace``, ... see ``KEYWORDS``) override it.

    ``train_func`` (the seed's ``q_func=`` is accepted too) turns on quantization-aware training
    (approach ``qat``): each trial's fake-quantized model is handed to ``train_func(model,
    **quantization.training keywords)`` to train, then converted to int8.
    """
    raw, base_dir = raw_config(config)
    if "q_func" in kw:
        if train_func is not None:
            raise ConfigError("q_func", "give train_func or its alias q_func, not both")
        train_func = kw.pop("q_func")
    if train_func is not None:
        _train_with_python_func(raw)
    for key, value in kw.items():
        if key not in KEYWORDS:
            raise ConfigError(key, f"unknown keyword of tunekit.tune; valid: {', '.join(KEYWORDS)}")
        set_path(raw, KEYWORDS[key], value)
    _use_python_objects(raw, model, metric, eval_func)
    spec = config_module.parse(raw, base_dir=base_dir)
    if spec.tuning.distributed:
        raise ConfigError("tuning.study", "distributed tuning needs a config file that workers "
                                          "can rebuild the model and data from: run `tunekit "
                                          "tune CONFIG.yaml --study NAME` (tunekit.tune receives "
                                          "Python objects, which workers cannot share)")
    adaptor = create_adaptor(spec)
    metric_obj = metric if isinstance(metric, Metric) else create_metric(spec)
    parts = assemble_parts(spec, adaptor, model, calib_data, eval_data, metric_obj, eval_func,
                           eval_func_name=getattr(eval_func, "__name__", "eval_func"))
    if train_func is not None and spec.quantization.training is not None:
        parts.train_func = TrainingCall(train_func, spec.quantization.training.params,
                                        f"train_func {getattr(train_func, '__name__', '')}")
    with trial_lines(quiet):
        return Tuner(parts).run()


def _train_with_python_func(raw: dict[str, Any]) -> None:
    """Point ``quantization.training`` at the ``train_func`` given to :func:`tune` (approach
    ``qat`` unless the config says otherwise), keeping the config's keywords for it."""
    quantization = raw.setdefault("quantization", {})
    quantization.setdefault("approach", "qat")
    training = quantization.get("training")
    params = {k: v for k, v in training.items() if k != "func"} \
        if isinstance(training, dict) else {}
    quantization["training"] = {**params, "func": "<python>:train_func"}


def _use_python_objects(raw: dict[str, Any], model: Any,
                        metric: Metric | str | Mapping[str, Any] | None,
                        eval_func: Callable[[Any], Any] | None) -> None:
    """Make the config name the objects given to :func:`tune` instead of its own ``module:attr``
    references, so that one schema validates both paths; a Metric instance needs no lookup."""
    model_section = raw.setdefault("model", {})
    model_section.pop("path", None)
    model_section["factory"] = "<python>:model"
    if "framework" not in model_section:
        model_section["framework"] = guess_framework(model)
    evaluation = raw.setdefault("evaluation", {}) or {}
    raw["evaluation"] = evaluation
    evaluation.pop("data", None)
    if metric is not None:
        evaluation.pop("eval_func", None)
        evaluation.pop("metric", None)
        if not isinstance(metric, Metric):
            evaluation["metric"] = metric
            evaluation["data"] = "<python>:eval_data"
    if eval_func is not None:
        evaluation.pop("metric", None)
        evaluation["eval_func"] = "<python>:eval_func"


def tune_config(spec: TuneSpec) -> TuneResult:
    """Run a tuning described entirely by a config (the CLI's path)."""
    return Tuner(parts_from_config(spec)).run()


def parts_from_config(spec: TuneSpec) -> Parts:
    """Load the model, data, evaluation and plugins a config names (shared by tune and compare)."""
    adaptor = create_adaptor(spec)
    model = load_model(spec, adaptor)
    q, e = spec.quantization, spec.evaluation
    calib, eval_data, eval_func = config_sources(spec)
    ref = {"factory": spec.model.factory} if spec.model.factory else {"path": str(spec.model.path)}
    parts = assemble_parts(spec, adaptor, model, calib, eval_data, create_metric(spec),
                           eval_func, eval_func_name=f"evaluation.eval_func {e.eval_func}")
    parts.model_ref = {**ref, "base_dir": str(spec.base_dir)}
    if q.training is not None:
        func = resolve(q.training.func, spec.base_dir, "quantization.training.func")
        parts.train_func = TrainingCall(func, q.training.params,
                                        f"quantization.training.func {q.training.func}")
    return parts


def config_sources(spec: TuneSpec) -> tuple[Any, Any, Callable[[Any], Any] | None]:
    """The calibration data, evaluation data and ``eval_func`` a config names (None where it
    names none), resolved from its ``module:attr`` references; errors name the field."""
    q, e = spec.quantization, spec.evaluation
    calib = data_source(resolve(q.calib_data, spec.base_dir, "quantization.calibration.data"),
                        "quantization.calibration.data") if q.calib_data else None
    eval_data = data_source(resolve(e.data, spec.base_dir, "evaluation.data"),
                            "evaluation.data") if e.data else None
    eval_func = resolve(e.eval_func, spec.base_dir, "evaluation.eval_func") if e.eval_func else None
    if eval_func is not None and not callable(eval_func):
        raise ConfigError("evaluation.eval_func", f"{e.eval_func!r} is not callable")
    return calib, eval_data, eval_func


def create_adaptor(spec: TuneSpec) -> Adaptor:
    """The adaptor plugin the config names, with its options (errors name ``model.options``)."""
    try:
        return plugins.create("tunekit.adaptors", spec.model.framework, spec.model.options)
    except Exception as exc:
        raise ConfigError("model.options", str(exc)) from exc


def create_metric(spec: TuneSpec) -> Metric | None:
    """The metric plugin the config names, or None when it names none (``eval_func``)."""
    m = spec.evaluation.metric
    return None if m is None else plugins.create("tunekit.metrics", m.name, m.params)


def load_model(spec: TuneSpec, adaptor: Adaptor) -> Any:
    """The FP32 model a config names: a factory's return value or a file the adaptor loads."""
    if spec.model.factory:
        factory = resolve(spec.model.factory, spec.base_dir, "model.factory")
        if not callable(factory):
            return factory
        return call_user(factory, what=f"model.factory {spec.model.factory}")
    path = spec.model.path
    assert path is not None
    if not path.exists():
        raise ConfigError("model.path", f"the model file {str(path)!r} does not exist; give "
                                        "the path of a saved model (relative to the config's "
                                        "folder)")
    return adaptor.load_model(path)


def assemble_parts(spec: TuneSpec, adaptor: Adaptor, model: Any,
                   calib_data: Iterable[Any] | None, eval_data: Iterable[Any] | None,
                   metric: Metric | None, eval_func: Callable[[Any], Any] | None,
                   eval_func_name: str) -> Parts:
    """The tuner's parts from a config and the objects it resolved to (shared by
    :func:`tune`, :func:`parts_from_config` and graph optimization's AMP tuning)."""
    q = spec.quantization
    calib = None
    if calib_data is not None:
        calib = require_batches(take_samples(calib_data, q.sampling_size), "the calibration data")
    elif q.approach not in ("dynamic", "qat"):
        raise ConfigError("quantization.calibration.data",
                          f"approach {q.approach!r} needs calibration data (activation ranges); "
                          "give it, or use approach: dynamic")
    if metric is None and eval_func is None:
        raise ConfigError("evaluation", "give evaluation.metric with evaluation.data, or "
                                        "evaluation.eval_func (a function model -> float)")
    evaluator = Evaluator(adaptor, eval_data, metric, eval_func, eval_func_name)
    if not spec.tuning.criterion_direction_given and evaluator.higher_is_better is not None:
        criterion = replace(spec.tuning.criterion, higher_is_better=evaluator.higher_is_better)
        spec = replace(spec, tuning=replace(spec.tuning, criterion=criterion))
    strategy = plugins.create("tunekit.strategies", spec.tuning.strategy.name,
                              spec.tuning.strategy.params)
    objectives = [(o.name, plugins.create("tunekit.objectives", o.name, o.params), o.weight)
                  for o in spec.tuning.objectives]
    return Parts(spec, adaptor, model, calib, evaluator, strategy, objectives)


def runs_code(ref: Mapping[str, Any]) -> bool:
    """Whether rebuilding the recorded FP32 model runs code the workspace names: a factory, or
    a model file that may only be unpickled (``options.allow_pickle``)."""
    return bool(ref.get("factory") or (ref.get("options") or {}).get("allow_pickle"))


def load(workspace: str | Path, model: Any = None, *, trust: bool = False) -> Any:
    """Rebuild a tuned model from a workspace (its recipe and saved weights), without tuning.

    ``model`` is the FP32 model. Without it, the model reference the CLI run recorded in
    ``best_config.json`` is used: a model file read in a safe format as it is, but a factory
    (imported from a recorded folder) or a pickled model only with ``trust=True``: that file
    decides which code runs, so a workspace from
    someone else is no safer to load that way than their Python script. The weights themselves
    are read in a safe format either way. The adaptor is made with the options the recipe kept
    (``model.options`` of the tuning), so the model is rebuilt as it was tuned.
    """
    workspace = Path(workspace)
    data = load_recipe(workspace)
    try:  # the options the model was tuned with (older recipes have none)
        adaptor = plugins.create("tunekit.adaptors", data["framework"], data.get("options") or {})
    except Exception as exc:
        raise ConfigError("workspace", f"{str(workspace)!r}: best_config.json's adaptor "
                                       f"options no longer fit the installed adaptor: {exc}") from exc
    built_by = data.get("adaptor")
    if built_by not in (None, class_path(type(adaptor))):
        raise ConfigError("workspace", f"{str(workspace)!r} holds models built by {built_by} "
                                       f"(graph optimization: tunekit optimize), which "
                                       f"tunekit.load cannot rebuild; keep the model that "
                                       f"`tunekit optimize --out FILE` or GraphResult.save writes")
    if model is None:
        ref = data.get("model") or {}
        if not ref:
            raise ConfigError("model", "this workspace was tuned from Python; pass the FP32 model: "
                                       "tunekit.load(workspace, model)")
        if not trust and runs_code(ref):
            raise ConfigError("model", f"{str(workspace)!r} names the code that builds its FP32 "
                                       f"model ({ref.get('factory') or ref.get('path')}), which "
                                       "tunekit.load does not run unasked: pass the model "
                                       "(tunekit.load(workspace, model)), or trust=True if you "
                                       "trust whoever wrote this workspace")
        raw = {"framework": data["framework"], **{k: v for k, v in ref.items() if k != "base_dir"}}
        base_dir = Path(ref.get("base_dir", "."))
        if "path" in raw:
            raw["path"] = str(Path(raw["path"]))
        spec = config_module.parse({"model": raw, "evaluation": {}, "quantization": {}},
                                   base_dir=base_dir)
        model = load_model(spec, adaptor)
    return adaptor.load(model, recipe_config(data), workspace / data["model_file"])
