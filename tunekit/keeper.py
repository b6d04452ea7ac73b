"""The best model so far: chosen by :func:`tunekit.selection.is_better`, on disk as soon as a
passing one is found (a failing best once, at the end), and put in its deployed form once the
trials are over.

Kept apart from the loop so that "which model is the result" reads in one place: a trial
evaluated elsewhere (replayed from the history, or a worker's) is rebuilt here only when it
becomes the best, through the runner's guarded :meth:`~tunekit.runner.TrialRunner.rebuild`,
so a rebuild that fails costs that trial its place, never the tuning.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from tunekit.errors import NotSupportedError, TunekitError
from tunekit.history import History, Trial
from tunekit.runner import TrialRunner
from tunekit.selection import all_fp32, best_passing, is_better
from tunekit.workspace import Workspace

log = logging.getLogger("tunekit")


@dataclass
class Best:
    """The trial kept as the result and its model (``trial`` None: the FP32 model is kept)."""

    trial: Trial | None = None
    candidate: Any = None


class Keeper:
    """Keeps the best trial of one tuning and its model, saved in the workspace."""

    def __init__(self, runner: TrialRunner, workspace: Workspace) -> None:
        self.runner, self.workspace = runner, workspace
        self.best = Best()

    def is_better(self, trial: Trial) -> bool:
        """Whether ``trial`` displaces the best so far (never one slower than FP32)."""
        return is_better(trial, self.best.trial, self.runner.criterion,
                         lambda t: self.runner.not_faster(t.details))

    def offer(self, trial: Trial, candidate: Any) -> None:
        """Keep ``trial`` if it is better; ``candidate`` None: it was evaluated elsewhere
        (replayed or a worker's), so its model is rebuilt, only if it is better."""
        if not self.is_better(trial):
            return
        if candidate is None:
            candidate = self.runner.rebuild(trial)
            if candidate is None:
                return
        self.best = Best(trial, candidate)
        if trial.accepted:  # a failing best is saved once, by finish()
            self.save()

    def save(self) -> None:
        trial, adaptor = self.best.trial, self.runner.parts.adaptor
        assert trial is not None
        path = self.workspace.model_file(adaptor.model_suffix)
        try:
            adaptor.save(self.best.candidate, trial.config, path)
        except NotSupportedError as exc:
            log.warning("the best model is not saved: %s", exc)

    def finish(self, history: History, stopped: bool) -> tuple[dict[str, Any], bool]:
        """After the trials: the deployment info and whether FP32 itself is the result (a
        tuning ``stopped`` for its failures deploys nothing)."""
        deployed = None if stopped else self._deploy_slow_passing(history)
        fp32_kept = self._keep_fp32_if_none_faster(history)
        if self.best.trial is not None and not self.best.trial.accepted:
            self.save()  # none passed: the best failing model, saved once (~5-50 ms)
        if deployed is None:
            deployed = {} if stopped else self.deploy()
        return deployed, fp32_kept

    def deploy(self) -> dict[str, Any]:
        """Let the adaptor put the accepted best candidate in its deployed form (see
        :meth:`Adaptor.deploy`: compiled, or built by a faster backend), checked against the
        accuracy goal by evaluating it again; the best model on disk follows the choice."""
        best, runner = self.best, self.runner
        parts = runner.parts
        if best.trial is None or not best.trial.accepted or best.candidate is None:
            return {}
        checked: list[float] = []

        def accepts(model: Any) -> bool:
            metric = parts.evaluator(model, "deployed model")
            runner.evaluations += 1
            checked.append(metric)
            return math.isfinite(metric) and runner.criterion.accepts(metric,
                                                                      runner.baseline["metric"])

        try:
            candidate, info = parts.adaptor.deploy(parts.model, best.trial.config, best.candidate,
                                                   parts.calib_data or [],
                                                   runner.sample_inputs(), accepts)
        except TunekitError as exc:
            log.warning("the tuned model is kept as its trial built it: deploying it failed: %s",
                        exc)
            return {"error": str(exc)}
        info = dict(info, **({"checked_metrics": checked} if checked else {}))
        if candidate is not best.candidate:
            self.best = Best(best.trial, candidate)
            self.save()
        if info:
            log.info("deployed: %s", ", ".join(f"{k} {v}" for k, v in info.items()))
        return info

    def _deploy_slow_passing(self, history: History) -> dict[str, Any] | None:
        """Where every passing candidate timed no faster than FP32 as its trial built it, the
        adaptor may still deploy the best of them in a faster form (PyTorch's ``auto``: PT2E
        compiled by Inductor where the trials ran eagerly, as for HuggingFace encoders FX cannot
        trace). That model is kept when, measured beside FP32 again, it is faster; otherwise
        nothing changes (None) and FP32 is kept."""
        runner = self.runner
        if self.best.trial is not None and self.best.trial.accepted:
            return None
        trial = best_passing(history.trials, runner.criterion)
        if trial is None or all_fp32(trial.config) \
                or not any(o.unit == "s" for _, o, _ in runner.parts.objectives):
            return None
        candidate = runner.rebuild(trial)
        if candidate is None:
            return None
        previous, self.best = self.best, Best(trial, candidate)
        info = self.deploy()
        values = runner.measure_all(self.best.candidate)
        if self.best.trial is None or not self.best.trial.accepted or runner.not_faster(values):
            self.best = previous
            return None
        self.save()
        return dict(info, deployed_speed={name: round(runner.reference(name, values)
                                                      / values[name], 3)
                                          for name, objective, _ in runner.parts.objectives
                                          if objective.unit == "s" and name in values})

    def _keep_fp32_if_none_faster(self, history: History) -> bool:
        """Where candidates met the goal but none beat FP32 on the objectives, the result is the
        FP32 model itself (a slower "tuned" model would break tunekit's one promise); the best
        model file of an earlier, non-passing best is removed so the workspace holds none."""
        if (self.best.trial is not None and self.best.trial.accepted) \
                or not any(trial.accepted for trial in history):
            return False
        parts = self.runner.parts
        self.best = Best(None, parts.model)
        self.workspace.model_file(parts.adaptor.model_suffix).unlink(missing_ok=True)
        log.info("FP32 kept: no candidate that meets the goal beats the FP32 model")
        return True


__all__ = ["Best", "Keeper"]
