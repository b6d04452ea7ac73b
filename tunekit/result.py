"""The result of a tuning, what it leaves in the workspace, and how to load it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunekit import changes
from tunekit.criterion import AccuracyCriterion
from tunekit.failures import failures
from tunekit.history import Trial
from tunekit.pareto import pareto_front
from tunekit.selection import all_fp32
from tunekit.space import QuantConfig, TuningSpace
from tunekit.speed import Speed, from_details
from tunekit.version import __version__
from tunekit.workspace import HTML_REPORT, RECIPE, REPORT, RESULT, Workspace

if TYPE_CHECKING:
    from tunekit.adaptor import Adaptor
    from tunekit.config import TuneSpec

#: What the summary and ``result.json`` say when the FP32 model is the result.
FP32_KEPT = "FP32 kept: no candidate faster"

STATUS_TEXT = {
    "met": "the accuracy goal is met",
    "strategy_done": "the strategy has nothing left to try",
    "max_trials": "the trial budget (exit_policy.max_trials) is spent",
    "timeout": "the time budget (exit_policy.timeout) is spent",
    "strategy_stuck": "the strategy kept proposing configs that were already evaluated",
    "failing": "the candidates kept failing (tuning.exit_policy.failure_share)",
}


@dataclass
class TuneResult:
    """What a tuning produced. It always exists: when the goal is not met, ``best_model`` is the
    best candidate seen (by metric) and ``met`` is False."""

    best_model: Any
    best_trial: Trial | None
    baseline: dict[str, Any]
    trials: tuple[Trial, ...]
    status: str
    evaluations: int
    wall_s: float
    workspace: Path
    criterion: AccuracyCriterion
    framework: str
    space: TuningSpace | None = field(default=None, repr=False)
    #: objective name → ``minimize``/``maximize``, the axes of :attr:`pareto_front`
    objective_directions: Mapping[str, str] = field(default_factory=dict)
    #: the adaptor that built the candidates (:meth:`save` writes through it; graph
    #: optimization's AMP adaptors are not the framework's registered one)
    adaptor: Adaptor | None = field(default=None, repr=False)
    #: candidates met the goal but none was faster than FP32, so the result is the FP32 model
    fp32_kept: bool = False
    #: per-op sensitivity the strategy measured: source → op name → score (higher = more)
    sensitivity: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: distributed: evaluations (in :attr:`evaluations`) of configs past a batch's first
    #: accepted one, which workers finished before the batch was cut; not in :attr:`trials`
    unrecorded: int = 0
    #: trial number → the runtimes its speedup compares, where they differ (TFLite vs TF)
    runtimes: Mapping[int, str] = field(default_factory=dict)
    #: objective name → its unit (``s``, `` B``): how report.html labels its axes
    objective_units: Mapping[str, str] = field(default_factory=dict)
    #: the adaptor's options (``model.options``): the recipe keeps them so that
    #: :func:`tunekit.load` rebuilds the model with the same adaptor settings
    adaptor_options: Mapping[str, Any] = field(default_factory=dict)
    #: how the best model was put in its deployed form (see ``Adaptor.deploy``), e.g. the backend
    deployment: Mapping[str, Any] = field(default_factory=dict)
    #: where the time went, in seconds (each trial's own is its ``duration_s`` and ``time.*``
    #: details): ``loop_s`` (the proposal loop, trials included), ``history_s`` (history writes,
    #: in the loop), ``calibrate_s`` and ``probes_s`` (one-off passes; probes run in the loop),
    #: ``deploy_s`` (after the loop), ``outputs_s`` (writing the result files)
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        """Whether the returned model meets the goal: the best candidate, or the FP32 model when
        no passing candidate was faster (:attr:`fp32_kept`; FP32 meets any accuracy goal)."""
        return self.fp32_kept or (self.best_trial is not None and self.best_trial.accepted)

    @property
    def best_config(self) -> QuantConfig | None:
        return self.best_trial.config if self.best_trial else None

    @property
    def pareto_front(self) -> tuple[Trial, ...]:
        """Passing trials that no other passing trial beats in the metric and every objective
        (see :mod:`tunekit.pareto`); pick one by its ``config`` to trade accuracy for speed."""
        return pareto_front(self.trials, self.objective_directions,
                            self.criterion.higher_is_better)

    def _fp32_kept_why(self) -> str:
        """Why FP32 was kept: only the every-op-FP32 config met the goal (a strategy that fell
        everything back), or the passing candidates were no better than FP32 on the objective."""
        passing = [t for t in self.trials if t.accepted]
        mixed = [t for t in passing if not all_fp32(t.config)]
        if not mixed:
            return "only the config with every op in FP32 met the goal"
        return (f"{len(mixed)} candidate(s) met the goal, none better than the FP32 model on "
                "the objective")

    def summary(self) -> str:
        """A few lines for the end of a CLI run."""
        base = self.baseline["metric"]
        status = STATUS_TEXT.get(self.status, self.status)
        if self.met and self.status == "strategy_done":
            status = "the strategy finished (nothing left to improve)"
        verdict = "goal met" if self.met else "goal NOT met" if self.best_trial is not None \
            else "no model"
        extra = (f" ({self.unrecorded} of them by workers past a batch's first accepted "
                 "config, not in the history)") if self.unrecorded else ""
        lines = [(f"{verdict}: {status} "
                  f"after {len(self.trials)} trial(s), {self.evaluations} evaluation(s) "
                  f"incl. the baseline{extra}, {self.wall_s:.1f} s")]
        if self.fp32_kept:
            lines.append(f"{FP32_KEPT}: {self._fp32_kept_why()}, so the result is the FP32 model")
        if self.best_trial is not None and self.best_trial.metric is not None:
            reference = self.space.default() if self.space else None
            lines.append(f"best: trial {self.best_trial.number}, metric {self.best_trial.metric:.4f} "
                         f"(baseline {base:.4f}, target {self.criterion.target(base):.4f}), "
                         f"{self.best_trial.config.summary(reference)}")
            lines += [f"speed: {speed.text()}" for speed in self.speeds(self.best_trial).values()]
        if self.deployment.get("backend"):
            lines.append(f"deployed with the {self.deployment['backend']} backend")
        lines.append(f"workspace: {self.workspace}")
        return "\n".join(lines)

    def speeds(self, trial: Trial) -> dict[str, Speed]:
        """Per latency objective timed beside FP32 in ``trial``, its :class:`Speed`."""
        found = {name: from_details(trial.details, name, self.runtimes.get(trial.number))
                 for name in self.objective_directions}
        return {name: speed for name, speed in found.items() if speed is not None}

    def _speed_dicts(self, trial: Trial) -> dict[str, dict[str, Any]]:
        return {name: speed.to_dict() for name, speed in self.speeds(trial).items()}

    def to_dict(self) -> dict[str, Any]:
        best = self.best_trial
        return {
            "met": self.met, "status": self.status, "trials": len(self.trials),
            "evaluations": self.evaluations, "unrecorded_evaluations": self.unrecorded,
            "wall_s": round(self.wall_s, 3),
            "baseline": self.baseline["metric"],
            "baseline_objectives": self.baseline.get("objectives", {}),
            "target": self.criterion.target(self.baseline["metric"]),
            "best_trial": best.number if best else None,
            "best_metric": best.metric if best else None,
            "best_objectives": objective_values(best) if best else {},
            "speed": self._speed_dicts(best) if best else {},
            "precisions": best.config.counts() if best else {},
            "fallback_ops": {op.name: c.precision for op, c in best.config.ops.items()
                             if c.precision != "int8"} if best else {},
            "pareto_front": [{"trial": t.number, "metric": t.metric,
                              "objectives": objective_values(t), "speed": self._speed_dicts(t),
                              "ops": t.config.to_list()} for t in self.pareto_front],
            "fp32_kept": self.fp32_kept, "note": FP32_KEPT if self.fp32_kept else None,
            "stages": stage_counts(self.trials),
            "sensitivity": {source: dict(scores) for source, scores in self.sensitivity.items()},
            "failures": failures(self.trials),
            "deployment": dict(self.deployment),
            **self._report_inputs(),
        }

    def _report_inputs(self) -> dict[str, Any]:
        """What report.html is drawn from, so ``tunekit report --html`` needs only this file:
        every trial (its ops as changes from the default config), the default and best ops."""
        default = self.space.default() if self.space else None
        return {
            "framework": self.framework, "higher_is_better": self.criterion.higher_is_better,
            "objectives": {name: {"direction": direction,
                                  "unit": self.objective_units.get(name, "")}
                           for name, direction in self.objective_directions.items()},
            "default_ops": default.to_list() if default else [],
            "best_ops": self.best_trial.config.to_list() if self.best_trial else [],
            "op_types": changes.op_types([default] if default else
                                         [t.config for t in self.trials]),
            "history": [trial_record(t, default, self._speed_dicts(t)) for t in self.trials],
        }

    def save(self, path: str | Path) -> None:
        """Write the best model (adaptor's safe format) and its recipe to another folder."""
        from tunekit import plugins

        if self.fp32_kept:
            raise ValueError(f"{FP32_KEPT}: there is no tuned model to save; use the FP32 model")
        if self.best_trial is None:
            raise ValueError("there is no model to save: every trial failed")
        adaptor = self.adaptor or plugins.create("tunekit.adaptors", self.framework)
        out = Workspace(Path(path))
        out.path.mkdir(parents=True, exist_ok=True)
        adaptor.save(self.best_model, self.best_trial.config, out.model_file(adaptor.model_suffix))
        out.write_json(RECIPE, recipe(self, adaptor, {}))


def stage_counts(trials: tuple[Trial, ...]) -> dict[str, int]:
    """Trials per strategy stage, in the order the stages first ran (unnamed stages left out)."""
    counts: dict[str, int] = {}
    for trial in trials:
        if trial.stage is not None:
            counts[trial.stage] = counts.get(trial.stage, 0) + 1
    return counts


#: Trial details that are bookkeeping (timings, early rejection), not objective values.
_BOOKKEEPING = ("time.", "early_rejected", "evaluated_samples")


def objective_values(trial: Trial) -> dict[str, float]:
    """The trial's measured objective values (and their extra figures), without bookkeeping."""
    return {k: v for k, v in trial.details.items() if not k.startswith(_BOOKKEEPING)}


def trial_record(trial: Trial, default: QuantConfig | None,
                 speed: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """One trial for result.json: its outcome, full error, details, speed per latency
    objective (:class:`tunekit.speed.Speed`) and the ops that differ from ``default``
    (:mod:`tunekit.changes`)."""
    return {"trial": trial.number, "metric": trial.metric, "objective": trial.objective,
            "accepted": trial.accepted, "failed": trial.failed, "error": trial.error,
            "duration_s": round(trial.duration_s, 4), "details": dict(trial.details),
            "speed": dict(speed), "changes": changes.encode(trial.config, default),
            "stage": trial.stage}


def recipe(result: TuneResult, adaptor: Adaptor, model_ref: dict[str, str]) -> dict[str, Any]:
    """``best_config.json``: enough to rebuild the tuned model from the FP32 one, no tuning."""
    best = result.best_trial
    assert best is not None
    return {"tunekit_version": __version__, "framework": result.framework, "model": model_ref,
            "adaptor": class_path(type(adaptor)), "options": dict(result.adaptor_options),
            "model_file": f"best_model{adaptor.model_suffix}", "met": result.met,
            "trial": best.number, "metric": best.metric, "baseline": result.baseline["metric"],
            "objectives": objective_values(best), "ops": best.config.to_list(),
            "deployment": dict(result.deployment)}


def class_path(cls: type) -> str:
    """``module:QualName`` of a class: names the adaptor that built a workspace's models."""
    return f"{cls.__module__}:{cls.__qualname__}"


def write_outputs(result: TuneResult, workspace: Workspace, adaptor: Adaptor,
                  model_ref: dict[str, str], spec: TuneSpec) -> None:
    from tunekit.htmlreport import render

    if result.best_trial is not None:
        workspace.write_json(RECIPE, recipe(result, adaptor, model_ref))
    data = {"model": model_label(model_ref), "strategy": spec.tuning.strategy.name,
            **result.to_dict()}
    workspace.write_json(RESULT, data)
    workspace.write_text(REPORT, report(result))
    workspace.write_text(HTML_REPORT, render(data))


def model_label(model_ref: Mapping[str, str]) -> str:
    """How the report names the model: its file or factory, as the config gave it."""
    return model_ref.get("path") or model_ref.get("factory") or "a model passed from Python"


def report(result: TuneResult) -> str:
    """``report.md``: the summary and one row per trial. With a latency objective the table
    shows the speedup (FP32 time / model time, both timed side by side on one batch size);
    else the objectives' weighted score relative to FP32 (lower is better)."""
    reference = result.space.default() if result.space else None
    timed = any(result.speeds(t) for t in result.trials)
    head = "speedup vs FP32 (FP32 / model ms, batch)" if timed else "objective (×FP32)"
    rows = [f"| trial | stage | config | metric | meets goal | {head} | s |",
            "|---|---|---|---|---|---|---|"]
    for t in result.trials:
        metric = "failed: " + table_cell(t.error or "") if t.failed else f"{t.metric:.4f}"
        if timed:
            speed = next(iter(result.speeds(t).values()), None)
            objective = f"{speed.cell()} ({speed.fp32_ms:.3f} / {speed.model_ms:.3f} ms, " \
                        f"{speed.batch_size})" if speed else ""
        else:
            objective = f"{t.objective:.3f}" if t.objective is not None else ""
        rows.append(f"| {t.number} | {t.stage or ''} | {t.config.summary(reference)} | {metric} | "
                    f"{'yes' if t.accepted else 'no'} | {objective} | {t.duration_s:.2f} |")
    notes = sorted(set(result.runtimes.values()))
    note = "".join(f"\nSpeedups compare {label}: part of them is the runtime's.\n"
                   for label in notes)
    return "# tunekit tuning report\n\n" + result.summary().replace("\n", "  \n") + \
        f"\n\nFigures, per-op sensitivity and every failure in full: `{HTML_REPORT}`.\n\n" + \
        "\n".join(rows) + "\n" + note + _pareto_section(result)


def table_cell(text: str) -> str:
    """``text`` whole inside a Markdown table cell: pipes escaped, line breaks as ``<br>``."""
    return text.replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def _pareto_section(result: TuneResult) -> str:
    """The Pareto front as a table: metric and each objective's value per front trial (a
    latency as its speedup and time in ms)."""
    front = result.pareto_front
    if not front:
        return ""
    names = list(result.objective_directions)
    rows = ["| trial | metric | " + " | ".join(names) + " |",
            "|---" * (len(names) + 2) + "|"]
    for t in front:
        speeds = result.speeds(t)
        cells = [f"{speeds[n].cell()} ({speeds[n].model_ms:.3f} ms)" if n in speeds
                 else f"{t.details[n]:.4g}" for n in names]
        rows.append(f"| {t.number} | {t.metric:.4f} | " + " | ".join(cells) + " |")
    return ("\n## Pareto front of passing trials\n\nNo other passing trial is as good in the "
            "metric and every objective and better in one; `result.json` lists their "
            "recipes. A latency shows as its speedup over FP32 and its time per batch.\n\n"
            + "\n".join(rows) + "\n")


def load_recipe(workspace: str | Path) -> dict[str, Any]:
    data = Workspace(Path(workspace)).read_json(RECIPE)
    if not isinstance(data, dict) or "ops" not in data:
        raise ValueError(f"{workspace}/{RECIPE} is not a tunekit recipe")
    return data


def recipe_config(data: dict[str, Any]) -> QuantConfig:
    return QuantConfig.from_list(data["ops"])


