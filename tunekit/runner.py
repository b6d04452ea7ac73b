"""The trial runner: everything that runs the model during a tuning, in one place.

Set-up (the data contract, the tuning space, the FP32 baseline, calibration, the strategy's
model probes), then one trial: build → evaluate with early rejection → measure → score →
:class:`~tunekit.history.Trial`. Every step of a trial, and the rebuild of a trial's model that
was evaluated elsewhere (a replayed or a worker's trial, when it becomes the best), runs under
the trial's error handling and time limit, so one bad candidate fails its trial alone.

The tuner, the distributed worker and ``tunekit compare`` all run trials through this class;
none of them drives another's lifecycle. Where the time went is recorded as data: each trial's
``time.*`` details (build, evaluate, measure; ``duration_s`` is its total) and the one-off
passes in :attr:`TrialRunner.timings`, so benchmarks need not wrap tunekit's methods.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tunekit.adaptor import Adaptor
from tunekit.batches import feed
from tunekit.config import TuneSpec
from tunekit.data import batch_inputs
from tunekit.errors import (
    ConfigError,
    ModelError,
    NotSupportedError,
    TrialError,
    TunekitError,
    TunekitWarning,
    UserCodeError,
)
from tunekit.evaluate import Evaluator
from tunekit.history import History, Trial, TrialState
from tunekit.objective import Objective
from tunekit.probes import hessian_probe, sensitivity_probe
from tunekit.progress import progress
from tunekit.sanity import check_baseline
from tunekit.selection import all_fp32
from tunekit.space import QuantConfig, TuningSpace
from tunekit.speed import runtimes
from tunekit.strategy import Needed, Strategy, TuneContext
from tunekit.watchdog import raise_if_overrun, time_limit
from tunekit.workspace import SPACE, Workspace

#: Workspace folder where the adaptor may keep calibration statistics for resume.
CALIBRATION = "calibration"

log = logging.getLogger("tunekit")

T = TypeVar("T")


@dataclass
class Parts:
    """The resolved inputs of one tuning (built by :mod:`tunekit.api`)."""

    spec: TuneSpec
    adaptor: Adaptor
    model: Any
    calib_data: list[Any] | None
    evaluator: Evaluator
    strategy: Strategy
    objectives: Sequence[tuple[str, Objective, float]] = field(default_factory=list)
    model_ref: dict[str, str] = field(default_factory=dict)
    #: approach qat: trains each trial's fake-quantized model (see Adaptor.train_quantized)
    train_func: Callable[[Any], Any] | None = None


class TrialRunner:
    """Runs the model for one tuning: its set-up once, then one trial per call of :meth:`run`."""

    def __init__(self, parts: Parts, workspace: Workspace) -> None:
        self.parts, self.spec, self.workspace = parts, parts.spec, workspace
        self.criterion = parts.spec.tuning.criterion
        self.baseline: dict[str, Any] = {}
        #: configs built and scored (the baseline and the deployed model's checks included)
        self.evaluations = 0
        #: trial number → the runtimes its speedup compares, where they differ (TFLite vs TF)
        self.runtimes: dict[int, str] = {}
        #: per failed trial number, the exception it raised (what kind of stop it calls for)
        self.causes: dict[int, BaseException] = {}
        #: seconds of the one-off passes outside the trials: ``calibrate_s``, ``probes_s``
        self.timings: dict[str, float] = {"calibrate_s": 0.0, "probes_s": 0.0}
        self._fed = False

    # ----------------------------------------------------------------------- set-up

    def set_up(self, write: bool = True) -> TuningSpace:
        """The restricted tuning space (written to the workspace unless ``write`` is False: a
        worker's, whose coordinator warns and writes), with the data contract resolved and
        checked on the FP32 model before anything else runs it (see :mod:`tunekit.batches`)."""
        space = self._space(write)
        if not self._fed:
            parts = self.parts
            parts.calib_data, parts.evaluator.data = feed(
                parts.adaptor, parts.model, parts.calib_data, parts.evaluator.data, self.spec.data)
            self._fed = True
        return space

    def _space(self, write: bool) -> TuningSpace:
        spec, adaptor = self.spec, self.parts.adaptor
        try:
            space = adaptor.capabilities(self.parts.model, spec.quantization.approach)
        except TunekitError:
            raise
        except Exception as exc:
            kind = type(self.parts.model)
            raise ModelError(f"{type(adaptor).__name__} could not analyse the model, a "
                             f"{kind.__module__}.{kind.__name__} ({type(exc).__name__}: {exc}); "
                             f"check that model.factory or model.path gives a "
                             f"{spec.model.framework} model") from exc
        if len(space) == 0:
            raise ModelError("the model has no op that can be quantized (no Conv/Linear-like op "
                             "was found); there is nothing to tune")
        try:
            restricted = space.restrict(spec.quantization.op_rules)
        except ValueError as exc:
            raise ConfigError("quantization.op_rules", str(exc)) from exc
        if not write:
            return restricted
        for rule in space.unmatched(spec.quantization.op_rules):
            warnings.warn(f"quantization.op_rules: the rule for {rule.selector} matches no op "
                          f"of this model (op types: {', '.join(space.by_type())})",
                          TunekitWarning, stacklevel=3)
        self.workspace.write_json(SPACE, restricted.to_dict())
        return restricted

    def measure_baseline(self, stored: Mapping[str, Any] | None = None) -> bool:
        """The FP32 baseline: ``stored`` where it holds one (resume, a worker), else measured
        now; True when measured now (the caller stores it)."""
        if stored and "metric" in stored:
            self.baseline = dict(stored)
            return False
        start = time.perf_counter()
        try:
            metric = self.parts.evaluator(self.parts.model, "baseline")
        except UserCodeError as exc:
            raise UserCodeError(f"evaluating the FP32 baseline failed: {exc}") from exc
        except TunekitError:
            raise
        except Exception as exc:
            raise ModelError(f"evaluating the FP32 baseline failed: {type(exc).__name__}: "
                             f"{exc}; check that evaluation.data yields (inputs, labels) "
                             "batches this model accepts") from exc
        self.evaluations += 1
        spread = self.parts.evaluator.spread
        check_baseline(metric, self.criterion.higher_is_better, spread.constant if spread else None)
        self.baseline = {"metric": metric, "objectives": {}}
        # a drifting objective (latency) is measured on FP32 beside each candidate that needs it
        # (see measure_all), so timing it here too would only add seconds to every tuning
        self.baseline["objectives"] = self.measure_all(self.parts.model, drifting=False)
        self.baseline["duration_s"] = round(time.perf_counter() - start, 4)
        return True

    def calibrate(self, space: TuningSpace) -> None:
        """Let the adaptor collect every option's statistics once (see Adaptor.calibrate); QAT
        trials learn their ranges in training, so they need none."""
        calib = self.parts.calib_data
        if not calib or self.parts.train_func is not None:
            return
        start = time.perf_counter()
        try:
            self.parts.adaptor.calibrate(self.parts.model, space,
                                         progress(calib, "calibrate", len(calib)),
                                         cache_dir=self.workspace.file(CALIBRATION))
        except TunekitError:
            raise
        except Exception as exc:
            raise ModelError(f"calibrating the model failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.timings["calibrate_s"] += time.perf_counter() - start

    def context(self, space: TuningSpace, history: History, seed: int) -> TuneContext:
        """The strategy's view, with the model probes (output MSE, Hessian traces) wired in
        and timed into ``timings["probes_s"]``."""
        parts, calib = self.parts, self.parts.calib_data or []
        return TuneContext(space, history, self.criterion, random.Random(seed),
                           sensitivity=self._timed(sensitivity_probe(
                               parts.adaptor, parts.model, calib, parts.evaluator.data)),
                           hessian=self._timed(hessian_probe(parts.adaptor, parts.model,
                                                             space.ops, calib, self.spec.base_dir)))

    def _timed(self, probe: Callable[[Any], T]) -> Callable[[Any], T]:
        def timed(argument: Any) -> T:
            start = time.perf_counter()
            try:
                return probe(argument)
            finally:
                self.timings["probes_s"] += time.perf_counter() - start
        return timed

    # ----------------------------------------------------------------------- one trial

    def run(self, number: int, config: QuantConfig, needed: Needed = "exact") -> tuple[Trial, Any]:
        """Build, judge and measure ``config`` as trial ``number`` (``needed``: its proposal's
        signal, see :attr:`tunekit.strategy.Batch.needed`); the trial and its candidate (None
        when it failed). Anything but a :class:`ConfigError` fails this trial alone."""
        start = time.perf_counter()
        times: dict[str, float] = {}  # where the trial's time went ("time.*"), early rejection
        try:
            with self._limited(start):
                candidate = self.build(config)
                times["time.quantize_s"] = time.perf_counter() - start
                metric, accepted = self._judge(number, candidate, needed, times)
                values = self._measure_if_due(number, config, candidate, accepted, times)
        except ConfigError:
            raise  # wrong for every trial alike: stop with the message
        except Exception as exc:  # noqa: BLE001 - anything one candidate raises fails it alone
            return self._failed(number, config, exc, start), None
        trial = Trial(number, config, TrialState.COMPLETE, metric=metric,
                      objective=self.score(values) if values else None, accepted=accepted,
                      duration_s=time.perf_counter() - start,
                      details={**values, **{k: round(v, 6) for k, v in times.items()}})
        return trial, candidate

    def rebuild(self, trial: Trial) -> Any:
        """The candidate of a trial evaluated elsewhere (replayed, or a worker's), built under
        the trial's error handling and time limit; None, with a warning, when that fails."""
        start = time.perf_counter()
        try:
            with self._limited(start):
                return self.build(trial.config)
        except ConfigError:
            raise
        except Exception as exc:  # as in run: only this trial's model is lost
            log.warning("trial %d cannot be kept as the best model: rebuilding it failed (%s)",
                        trial.number, _error_text(exc))
            log.debug("rebuilding trial %d failed", trial.number, exc_info=True)
            return None

    def build(self, config: QuantConfig) -> Any:
        """The candidate of ``config``: calibrated, or trained by the user's training function
        (approach qat, see :meth:`Adaptor.train_quantized`)."""
        parts, calib = self.parts, self.parts.calib_data or []
        if parts.train_func is not None:
            return parts.adaptor.train_quantized(parts.model, config, parts.train_func, calib)
        return parts.adaptor.quantize(parts.model, config, calib)

    @contextmanager
    def _limited(self, start: float) -> Iterator[None]:
        """The trial's time limit (``exit_policy.trial_timeout``), also for a native call that
        no alarm could cut short and that returned late."""
        limit = self.spec.tuning.trial_timeout
        with time_limit(limit):
            yield
        raise_if_overrun(start, limit)

    def _judge(self, number: int, candidate: Any, needed: Needed,
               times: dict[str, float]) -> tuple[float, bool]:
        """The candidate's metric (its bound when rejected early) and whether it is accepted."""
        evaluator, start = self.parts.evaluator, time.perf_counter()
        metric = evaluator(candidate, f"trial {number}", reject_if=self.reject_if(needed))
        times["time.evaluate_s"] = time.perf_counter() - start
        self.evaluations += 1
        if not math.isfinite(metric):
            raise TrialError(f"the metric of this candidate is {metric}")
        if evaluator.last_rejected:  # the metric is the bound, not a full evaluation
            times.update({"early_rejected": 1.0, "evaluated_samples": float(evaluator.last_samples)})
        return metric, self.criterion.accepts(metric, self.baseline["metric"])

    def _measure_if_due(self, number: int, config: QuantConfig, candidate: Any, accepted: bool,
                        times: dict[str, float]) -> dict[str, float]:
        """The objectives of an accepted candidate (of every candidate when none is costly),
        never of the all-FP32 config: it is never the result, so timing it is wasted."""
        values: dict[str, float] = {}
        due = accepted or not any(o.costly for _, o, _ in self.parts.objectives)
        if due and not all_fp32(config):
            start = time.perf_counter()
            values = self.measure_all(candidate)
            label = runtimes(self.parts.adaptor, candidate, self.parts.model)
            if label:
                self.runtimes[number] = label
            times["time.measure_s"] = time.perf_counter() - start
        times.update(self.parts.adaptor.candidate_details(candidate))
        return values

    def _failed(self, number: int, config: QuantConfig, exc: Exception, start: float) -> Trial:
        log.debug("trial %d failed", number, exc_info=exc)
        self.causes[number] = exc
        return Trial(number, config, TrialState.FAILED, error=_error_text(exc),
                     duration_s=time.perf_counter() - start)

    def reject_if(self, needed: Needed) -> Callable[[float], bool] | None:
        """The early-rejection test for a candidate whose proposal needs ``needed`` of its
        metric (see :mod:`tunekit.evaluate`), or None to evaluate it in full."""
        if not self.spec.evaluation.early_reject or not self.parts.evaluator.can_reject:
            return None
        if needed == "exact" or not self.baseline:
            return None
        criterion, baseline = self.criterion, self.baseline["metric"]
        if needed == "goal":
            return lambda bound: not criterion.accepts(bound, baseline)
        floor = float(needed)
        return lambda bound: (not criterion.accepts(bound, baseline)
                              and not criterion.better(bound, floor))

    # ----------------------------------------------------------------------- objectives

    def measure_all(self, model: Any, drifting: bool = True) -> dict[str, float]:
        """Each objective's value under its name, and its further figures (``details()``) as
        ``<name>.<key>``. An objective that drifts (latency) is measured beside the FP32 model
        (``<name>.fp32``; see :meth:`Objective.measure_beside`), whose first such figure also
        becomes the baseline's; ``drifting=False`` leaves those objectives out."""
        values: dict[str, float] = {}
        for name, objective, _ in self.parts.objectives:
            if objective.drifts and not drifting:
                continue
            data = self._data(objective)
            if objective.drifts:
                value, fp32 = objective.measure_beside(self.parts.adaptor, model,
                                                       self.parts.model, data)
                values[f"{name}.fp32"] = float(fp32)
                self.baseline["objectives"].setdefault(name, float(fp32))
            else:
                value = objective.measure(self.parts.adaptor, model, data)
            values[name] = float(value)
            values.update({f"{name}.{key}": float(value)
                           for key, value in objective.details().items()})
        return values

    def sample_inputs(self) -> Any:
        """The inputs of one batch (evaluation data, else calibration data), or None."""
        data = self.parts.evaluator.data if self.parts.evaluator.data is not None \
            else self.parts.calib_data
        return batch_inputs(data, 1, None, "the evaluation data")[0] if data else None

    def _data(self, objective: Objective) -> Any:
        data = self.parts.evaluator.data if self.parts.evaluator.data is not None \
            else self.parts.calib_data
        if data is None:
            raise ConfigError("evaluation.data", f"objective {type(objective).__name__} needs "
                                                 "input batches; give evaluation data")
        return data

    def reference(self, name: str, values: Mapping[str, float]) -> float:
        """The FP32 value to compare a candidate's ``name`` with: measured beside it when the
        objective drifts, else the baseline's."""
        beside = values.get(f"{name}.fp32")
        return beside if beside is not None else self.baseline["objectives"][name]

    def score(self, values: Mapping[str, float]) -> float:
        """Weighted mean of each objective relative to FP32 (1.0 = as FP32, lower = better)."""
        total, weights = 0.0, 0.0
        for name, objective, weight in self.parts.objectives:
            base, value = self.reference(name, values), values[name]
            ratio = value / base if objective.direction == "minimize" else base / value
            total, weights = total + weight * ratio, weights + weight
        return total / weights if weights else 0.0

    def not_faster(self, values: Mapping[str, float]) -> bool:
        """Whether a measured candidate (its objective ``values``) is no faster than FP32 on a
        time objective (unit ``s``, e.g. latency: speedup = FP32 time / model time ≤ 1)."""
        return any(objective.unit == "s" and name in values
                   and values[name] >= self.reference(name, values)
                   for name, objective, _ in self.parts.objectives)


def _error_text(exc: BaseException) -> str:
    """A trial's error line: tunekit's own messages as they are, anything else with its type."""
    return str(exc) if isinstance(exc, (TrialError, UserCodeError, NotSupportedError)) \
        else f"{type(exc).__name__}: {exc}"


__all__ = ["CALIBRATION", "Parts", "TrialRunner"]
