"""``tunekit.optimize_graph`` and ``tunekit optimize``: graph optimization from Python or YAML.

FP32 optimization needs only the model (and, for bf16, one example batch). With bf16 allowed and
an evaluation given, the bf16/fp32 choice per op is tuned by :class:`~tunekit.tuner.Tuner` on the
FP32-optimized graph (the ``tuning:`` section applies as for ``tunekit tune``; the default
strategy becomes ``amp``, looked up by that name among the installed strategies like any
other: op-type-wise, then op-wise fallback to fp32, see docs/graph-optimization.md). The result
of ``tunekit optimize`` is timed beside the input model on the example batch
(``GraphResult.speed``).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunekit import api as core_api
from tunekit import config as config_module
from tunekit import timing
from tunekit.adaptor import Adaptor
from tunekit.config import PluginSpec, TuneSpec
from tunekit.data import batch_size, split_batch
from tunekit.errors import ConfigError, NotSupportedError
from tunekit.graph import registry
from tunekit.graph.graph_result import GraphResult
from tunekit.graph.pipeline import needs_data
from tunekit.metric import Metric
from tunekit.speed import Speed
from tunekit.tuner import Tuner

log = logging.getLogger("tunekit")
#: the timing of the optimized model beside the input one, as the performance objective's
#: defaults: warm-up calls, timed calls each, alternating rounds, seconds, early stop
WARMUP, CALLS, ROUNDS, BUDGET_S, SETTLE = 5, 30, 5, 2.0, (3, 0.02)


def optimize_graph(model: Any, precisions: Sequence[str] = ("fp32",), *,
                   passes: Sequence[str] | Mapping[str, bool] | None = None,
                   example_data: Iterable[Any] | None = None,
                   eval_data: Iterable[Any] | None = None,
                   metric: Metric | str | Mapping[str, Any] | None = None,
                   eval_func: Callable[[Any], Any] | None = None,
                   config: str | Path | Mapping[str, Any] | None = None,
                   **kw: Any) -> GraphResult:
    """Optimize ``model``'s graph: FP32 passes, and bf16 where ``precisions`` allows it.

    ``example_data`` yields ``(inputs, labels)`` batches (bf16 needs one to place its casts;
    ``eval_data`` serves when absent). With ``metric``/``eval_func``, bf16+fp32 is tuned to the
    accuracy goal; ``config`` and ``kw`` (``accuracy_criterion``, ``strategy``, ``workspace``,
    ... as for :func:`tunekit.tune`) set the tuning.
    """
    raw, base_dir = core_api.raw_config(config)
    for key, value in kw.items():
        if key not in core_api.KEYWORDS:
            raise ConfigError(key, f"unknown keyword of tunekit.optimize_graph; valid: "
                                   f"{', '.join(core_api.KEYWORDS)}")
        core_api.set_path(raw, core_api.KEYWORDS[key], value)
    raw["model"] = {"framework": raw.get("model", {}).get("framework")
                    or core_api.guess_framework(model), "factory": "<python>:model"}
    raw["graph_optimization"] = {**(raw.get("graph_optimization") or {}),
                                 "precisions": list(precisions),
                                 **({"passes": passes} if passes is not None else {})}
    evaluation: dict[str, Any] = {}
    if isinstance(metric, (str, Mapping)):
        evaluation = {"metric": metric, "data": "<python>:eval_data"}
    raw["evaluation"] = evaluation
    spec = config_module.parse(raw, base_dir=base_dir)
    metric_obj = metric if isinstance(metric, Metric) else core_api.create_metric(spec)
    return _run(spec, model, example_data, eval_data, metric_obj, eval_func, "eval_func",
                timed=False)


def optimize_config(spec: TuneSpec) -> GraphResult:
    """Graph optimization as a config describes it (the CLI's path), timed beside the input
    model (``GraphResult.speed``; seconds of timing that ``tunekit.optimize_graph`` spares its
    callers, who hold both models)."""
    adaptor = core_api.create_adaptor(spec)
    model = core_api.load_model(spec, adaptor)
    example, eval_data, eval_func = core_api.config_sources(spec)
    return _run(spec, model, example, eval_data, core_api.create_metric(spec), eval_func,
                f"evaluation.eval_func {spec.evaluation.eval_func}", timed=True)


def _run(spec: TuneSpec, model: Any, example_data: Iterable[Any] | None,
         eval_data: Iterable[Any] | None, metric: Metric | None,
         eval_func: Callable[[Any], Any] | None, eval_func_name: str,
         timed: bool) -> GraphResult:
    """Hands the work to the framework's adaptor (``Adaptor.optimize_graph``), which runs the
    passes installed under its name; no framework is named here. ``timed``: time the result
    beside the input model too."""
    settings = spec.graph_optimization
    precisions = tuple(settings.get("precisions", ("fp32",)))
    framework = spec.model.framework
    offered = registry.frameworks()
    if framework not in offered:
        raise ConfigError("model.framework", f"graph optimization has passes for "
                                             f"{', '.join(offered) or 'no framework'}, not "
                                             f"{framework!r}")
    examples = example_data if example_data is not None else eval_data
    batch = next(iter(examples), None) if examples is not None else None
    if not spec.tuning.strategy_given:  # basic, the tuning default, has int8 stages: no use here
        spec = replace(spec, tuning=replace(spec.tuning, strategy=PluginSpec("amp")))
    tune = None
    if metric is not None or eval_func is not None:
        if spec.tuning.distributed:
            raise ConfigError("tuning.workers" if spec.tuning.workers else "tuning.study",
                              "graph optimization tunes in this process: its candidates are "
                              "graph rewrites that the workers of `tunekit tune` do not build; "
                              "remove tuning.workers and tuning.study")

        def tune(graph: Any, adaptor: Any) -> Any:
            if batch is None:
                raise needs_data("bf16 tuning needs one example batch to time the candidates")
            parts = core_api.assemble_parts(spec, adaptor, graph, [batch], eval_data, metric,
                                            eval_func, eval_func_name)
            return Tuner(parts).run()
    adaptor = core_api.create_adaptor(spec)
    try:
        result = adaptor.optimize_graph(model, precisions, settings.get("passes"), batch, tune)
    except NotSupportedError as exc:
        raise ConfigError("model.framework", f"{framework!r} has graph passes installed but its "
                                             f"adaptor cannot run them: {exc}") from exc
    if timed:
        result.speed, result.speed_note = _speed_against_input(adaptor, model, result.model,
                                                               batch)
    return result


def _speed_against_input(adaptor: Adaptor, model: Any, optimized: Any,
                         batch: Any) -> tuple[Speed | None, str]:
    """The optimized model timed beside the input model on the example batch (the overall
    gain, where a tuning's figure compares with the FP32-optimized graph), or why not: a
    failed timing costs the figure, not the optimized model."""
    if batch is None:
        return None, "not timed: no example batch (give calibration or evaluation data)"
    inputs = [split_batch(batch)[0]]
    try:
        mine, theirs, ratios = timing.beside(adaptor, optimized, model, inputs, WARMUP, CALLS,
                                             ROUNDS, BUDGET_S, SETTLE)
    except Exception as exc:  # noqa: BLE001 - any failure of either model: named, not fatal
        log.warning("timing the optimized model beside the input model failed: %s", exc)
        return None, f"not timed: {type(exc).__name__}: {exc}"
    return Speed(statistics.median(mine) * 1e3, statistics.median(theirs) * 1e3,
                 batch_size(inputs[0]), timing.spread(ratios)), ""
