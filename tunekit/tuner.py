"""The tuning loop: the only module that knows every part.

baseline → (strategy proposes → adaptor builds → evaluator scores → criterion judges → objectives
measure → history persists) until the goal, the budget or the strategy ends. Every trial is in the
optuna storage before and after it runs, the best passing model so far is on disk as soon as it is
found (a failing best at the end), and a result is always returned, also when the goal is not met.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tunekit.adaptor import Adaptor
from tunekit.batches import feed
from tunekit.config import TuneSpec
from tunekit.data import batch_inputs
from tunekit.distributed import Dispatcher, Job, LocalWorkers, trust_flags
from tunekit.errors import (ConfigError, ModelError, NotSupportedError, TrialError, TunekitError,
                            TunekitWarning, UserCodeError)
from tunekit.evaluate import Evaluator
from tunekit.failures import FailureWatch
from tunekit.history import History, Trial, TrialState
from tunekit.loop import Budget, drive
from tunekit.objective import Objective
from tunekit.probes import hessian_probe, sensitivity_probe
from tunekit.progress import progress
from tunekit.result import TuneResult, write_outputs
from tunekit.sanity import check_baseline
from tunekit.selection import best_passing, preferred_passing
from tunekit.space import QuantConfig, TuningSpace
from tunekit.speed import format_objective, runtimes
from tunekit.store import Store
from tunekit.strategy import Strategy, TuneContext
from tunekit.watchdog import raise_if_overrun, time_limit
from tunekit.workspace import HISTORY, HISTORY_DB, SPACE, Workspace

#: Workspace folder where the adaptor may keep calibration statistics for resume.
CALIBRATION = "calibration"

log = logging.getLogger("tunekit")

#: Consecutive proposals answered from the history after which a strategy is deemed stuck.
MAX_REPEATS = 1000


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


@dataclass
class _Best:
    trial: Trial | None = None
    candidate: Any = None


class Tuner:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.spec = parts.spec
        self.criterion = parts.spec.tuning.criterion
        self.workspace = Workspace(parts.spec.tuning.workspace)
        self.baseline: dict[str, Any] = {}
        self.best = _Best()
        self.evaluations = 0
        self.watch = FailureWatch(parts.spec.tuning.failure_share)
        self._fed = False
        #: distributed: evaluations workers made past a batch's first accepted config
        self.unrecorded = 0
        #: trial number → the runtimes its speedup compares, where they differ (TFLite vs TF)
        self.runtimes: dict[int, str] = {}

    # ----------------------------------------------------------------------- set-up

    def _feed(self) -> None:
        """Resolve the data contract and check it on the FP32 model, once, before anything
        else runs the model (see :mod:`tunekit.batches`)."""
        if self._fed:
            return
        parts = self.parts
        parts.calib_data, parts.evaluator.data = feed(
            parts.adaptor, parts.model, parts.calib_data, parts.evaluator.data, self.spec.data)
        self._fed = True

    def _space(self, write: bool = True) -> TuningSpace:
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
        if not write:  # a worker: the coordinator warns and writes
            return restricted
        for rule in space.unmatched(spec.quantization.op_rules):
            warnings.warn(f"quantization.op_rules: the rule for {rule.selector} matches no op "
                          f"of this model (op types: {', '.join(space.by_type())})",
                          TunekitWarning, stacklevel=2)
        self.workspace.write_json(SPACE, restricted.to_dict())
        return restricted

    def storage(self) -> str:
        """Where the history lives: ``tuning.storage``, else a file in the workspace (an SQLite
        database with local workers, whose heartbeats need a database; else a journal)."""
        tuning = self.spec.tuning
        if tuning.storage:
            return tuning.storage
        database = self.workspace.file(HISTORY_DB)
        if tuning.distributed or (tuning.resume and database.exists()
                                  and not self.workspace.file(HISTORY).exists()):
            return f"sqlite:///{database.resolve()}"  # also resuming one without --workers
        return str(self.workspace.file(HISTORY))

    def _store(self) -> Store:
        tuning = self.spec.tuning
        storage = self.storage()
        direction = "maximize" if self.criterion.higher_is_better else "minimize"
        try:
            return Store(storage, tuning.study or "tunekit", direction,
                         heartbeat=tuning.heartbeat if tuning.distributed else None)
        except Exception as exc:
            raise ConfigError("tuning.storage", storage_error(storage, exc)) from exc

    def _measure_baseline(self, store: Store | None, stored: dict[str, Any] | None) -> None:
        if stored and "metric" in stored:
            self.baseline = dict(stored)
            log.info("baseline (from the stored history): %.4f", self.baseline["metric"])
            return
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
        # a drifting objective (latency) is measured on FP32 beside each candidate that needs it
        # (see _measure_all), so timing it here too would only add seconds to every tuning
        objectives = self._measure_all(self.parts.model, drifting=False)
        self.baseline = {"metric": metric, "objectives": objectives,
                         "duration_s": round(time.perf_counter() - start, 4)}
        if store is not None:
            store.save_baseline(self.baseline)

    def _measure_all(self, model: Any, drifting: bool = True) -> dict[str, float]:
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

    def _data(self, objective: Objective) -> Any:
        data = self.parts.evaluator.data if self.parts.evaluator.data is not None \
            else self.parts.calib_data
        if data is None:
            raise ConfigError("evaluation.data", f"objective {type(objective).__name__} needs "
                                                 "input batches; give evaluation data")
        return data

    def _calibrate(self, space: TuningSpace) -> None:
        """Let the adaptor collect every option's statistics once (see Adaptor.calibrate); QAT
        trials learn their ranges in training, so they need none."""
        calib = self.parts.calib_data
        if not calib or self.parts.train_func is not None:
            return
        try:
            self.parts.adaptor.calibrate(self.parts.model, space,
                                         progress(calib, "calibrate", len(calib)),
                                         cache_dir=self.workspace.file(CALIBRATION))
        except TunekitError:
            raise
        except Exception as exc:
            raise ModelError(f"calibrating the model failed: {type(exc).__name__}: {exc}") from exc

    def prepare(self) -> TuningSpace:
        """Space, FP32 baseline and calibration without a history store: the set-up that
        :mod:`tunekit.compare` shares across strategies before calling :meth:`evaluate`."""
        self.workspace.prepare(False)
        space = self._space()
        self._feed()
        self._measure_baseline(None, None)
        self._calibrate(space)
        return space

    def evaluate(self, number: int, config: QuantConfig,
                 needed: str | float | None = None) -> Trial:
        """Build and judge one config, outside any history (see :meth:`prepare`); ``needed``
        is the strategy's ``metric_needed`` when it was proposed (a distributed worker's)."""
        return self._run_trial(number, config, needed)[0]

    def attach(self, baseline: Mapping[str, Any]) -> None:
        """Set up a distributed worker: the coordinator's baseline, the space and the
        calibration (from the workspace cache where the coordinator left it), writing nothing."""
        self.baseline = dict(baseline)
        space = self._space(write=False)
        self._feed()
        self._calibrate(space)

    def context(self, space: TuningSpace, history: History, seed: int) -> TuneContext:
        """The strategy's view, with the model probes (output MSE, Hessian traces) wired in."""
        parts, calib = self.parts, self.parts.calib_data or []
        return TuneContext(space, history, self.criterion, random.Random(seed),
                           sensitivity=sensitivity_probe(parts.adaptor, parts.model, calib,
                                                         parts.evaluator.data),
                           hessian=hessian_probe(parts.adaptor, parts.model, space.ops, calib,
                                                 self.spec.base_dir))

    # ----------------------------------------------------------------------- one trial

    def _reference(self, name: str, values: Mapping[str, float]) -> float:
        """The FP32 value to compare a candidate's ``name`` with: measured beside it when the
        objective drifts, else the baseline's."""
        beside = values.get(f"{name}.fp32")
        return beside if beside is not None else self.baseline["objectives"][name]

    def _score(self, values: dict[str, float]) -> float:
        """Weighted mean of each objective relative to FP32 (1.0 = as FP32, lower = better)."""
        total, weights = 0.0, 0.0
        for name, objective, weight in self.parts.objectives:
            base, value = self._reference(name, values), values[name]
            ratio = value / base if objective.direction == "minimize" else base / value
            total, weights = total + weight * ratio, weights + weight
        return total / weights if weights else 0.0

    def _needed(self) -> str | float:
        return getattr(self.parts.strategy, "metric_needed", "exact")

    def _reject_if(self, needed: str | float | None = None) -> Any:
        """The early-rejection test for the next candidate (see :mod:`tunekit.evaluate` and
        :attr:`Strategy.metric_needed`; ``needed`` overrides the strategy's), or None to
        evaluate it in full."""
        if not self.spec.evaluation.early_reject or not self.parts.evaluator.can_reject:
            return None
        needed = self._needed() if needed is None else needed
        if needed == "exact" or not self.baseline:
            return None
        criterion, baseline = self.criterion, self.baseline["metric"]
        if needed == "goal":
            return lambda bound: not criterion.accepts(bound, baseline)
        floor = float(needed)
        return lambda bound: (not criterion.accepts(bound, baseline)
                              and not criterion.better(bound, floor))

    def _build(self, config: QuantConfig) -> Any:
        """The candidate of ``config``: calibrated, or trained by the user's training function
        (approach qat, see :meth:`Adaptor.train_quantized`)."""
        parts, calib = self.parts, self.parts.calib_data or []
        if parts.train_func is not None:
            return parts.adaptor.train_quantized(parts.model, config, parts.train_func, calib)
        return parts.adaptor.quantize(parts.model, config, calib)

    def _run_trial(self, number: int, config: QuantConfig,
                   needed: str | float | None = None) -> tuple[Trial, Any]:
        start = time.perf_counter()
        limit = self.spec.tuning.trial_timeout
        times: dict[str, float] = {}  # where the trial's time went ("time.*"), early rejection
        try:
            with time_limit(limit):
                candidate = self._build(config)
                times["time.quantize_s"] = time.perf_counter() - start
                evaluator = self.parts.evaluator
                metric = evaluator(candidate, f"trial {number}",
                                   reject_if=self._reject_if(needed))
                times["time.evaluate_s"] = time.perf_counter() - start - times["time.quantize_s"]
                self.evaluations += 1
                if not math.isfinite(metric):
                    raise TrialError(f"the metric of this candidate is {metric}")
                accepted = self.criterion.accepts(metric, self.baseline["metric"])
                values = {}
                # the all-FP32 config is never the result (_is_better): timing it is wasted
                if (accepted or not any(o.costly for _, o, _ in self.parts.objectives)) \
                        and not _all_fp32(config):
                    measured = time.perf_counter()
                    values = self._measure_all(candidate)
                    label = runtimes(self.parts.adaptor, candidate, self.parts.model)
                    if label:
                        self.runtimes[number] = label
                    times["time.measure_s"] = time.perf_counter() - measured
                times.update(self.parts.adaptor.candidate_details(candidate))
                if evaluator.last_rejected:  # the metric is the bound, not a full evaluation
                    times.update({"early_rejected": 1.0,
                                  "evaluated_samples": float(evaluator.last_samples)})
            raise_if_overrun(start, limit)
        except ConfigError:
            raise  # wrong for every trial alike: stop with the message
        except Exception as exc:  # anything one candidate raises fails that trial alone
            log.debug("trial %d failed", number, exc_info=True)
            self.watch.causes[number] = exc
            error = str(exc) if isinstance(exc, (TrialError, UserCodeError, NotSupportedError)) \
                else f"{type(exc).__name__}: {exc}"
            trial = Trial(number, config, TrialState.FAILED, error=error,
                          duration_s=time.perf_counter() - start)
            return trial, None
        trial = Trial(number, config, TrialState.COMPLETE, metric=metric,
                      objective=self._score(values) if values else None, accepted=accepted,
                      duration_s=time.perf_counter() - start,
                      details={**values, **{k: round(v, 6) for k, v in times.items()}})
        return trial, candidate

    def _is_better(self, trial: Trial) -> bool:
        best = self.best.trial
        if trial.failed or (trial.accepted and (self._not_faster(trial.details)
                                                or _all_fp32(trial.config))):
            return False  # a passing candidate no faster than FP32 (or FP32 itself) never is
        if best is None:
            return True
        if trial.accepted != best.accepted:
            return trial.accepted
        if not trial.accepted and trial.details.get("early_rejected"):
            return False  # its metric is only a bound: it never displaces a model kept before
        if trial.accepted:
            preferred = preferred_passing(trial, best)
            if preferred is not None:
                return preferred is trial
        return self.criterion.better(trial.metric or 0.0, best.metric or 0.0)

    def _not_faster(self, values: Mapping[str, float]) -> bool:
        """Whether a measured candidate (its objective ``values``) is no faster than FP32 on a
        time objective (unit ``s``, e.g. latency: speedup = FP32 time / model time ≤ 1)."""
        return any(objective.unit == "s" and name in values
                   and values[name] >= self._reference(name, values)
                   for name, objective, _ in self.parts.objectives)

    def _deploy_slow_passing(self, history: History, space: TuningSpace) -> dict[str, Any] | None:
        """Where every passing candidate timed no faster than FP32 as its trial built it, the
        adaptor may still deploy the best of them in a faster form (PyTorch's ``auto``: PT2E
        compiled by Inductor where the trials ran eagerly, as for HuggingFace encoders FX cannot
        trace). That model is kept when, measured beside FP32 again, it is faster; otherwise
        nothing changes (None) and FP32 is kept."""
        if self.best.trial is not None and self.best.trial.accepted:
            return None
        trial = best_passing(history.trials, self.criterion)
        if trial is None or _all_fp32(trial.config) \
                or not any(o.unit == "s" for _, o, _ in self.parts.objectives):
            return None
        previous = self.best
        self.best = _Best(trial, self._build(trial.config))
        info = self._deploy(space)
        values = self._measure_all(self.best.candidate)
        if self.best.trial is None or not self.best.trial.accepted or self._not_faster(values):
            self.best = previous
            return None
        self._save_best(space)
        return dict(info, deployed_speed={name: round(self._reference(name, values)
                                                      / values[name], 3)
                                          for name, objective, _ in self.parts.objectives
                                          if objective.unit == "s" and name in values})

    def _keep_if_best(self, trial: Trial, candidate: Any, space: TuningSpace) -> None:
        if candidate is None and not trial.failed:
            # replayed from a previous run: rebuild so the best model can be saved
            if not self._is_better(trial):
                return
            candidate = self._build(trial.config)
        if self._is_better(trial):
            self.best = _Best(trial, candidate)
            if trial.accepted:  # a failing best is saved once, at the end of run()
                self._save_best(space)

    def _save_best(self, space: TuningSpace) -> None:
        trial, adaptor = self.best.trial, self.parts.adaptor
        assert trial is not None
        path = self.workspace.model_file(adaptor.model_suffix)
        try:
            adaptor.save(self.best.candidate, trial.config, path)
        except NotSupportedError as exc:
            log.warning("the best model is not saved: %s", exc)

    def _deploy(self, space: TuningSpace) -> dict[str, Any]:
        """Let the adaptor put the accepted best candidate in its deployed form (see
        :meth:`Adaptor.deploy`: compiled, or built by a faster backend), checked against the
        accuracy goal by evaluating it again; the best model on disk follows the choice."""
        best, parts = self.best, self.parts
        if best.trial is None or not best.trial.accepted or best.candidate is None:
            return {}
        data = parts.evaluator.data if parts.evaluator.data is not None else parts.calib_data
        inputs = batch_inputs(data, 1, None, "the evaluation data")[0] if data else None
        checked: list[float] = []

        def accepts(model: Any) -> bool:
            metric = parts.evaluator(model, "deployed model")
            self.evaluations += 1
            checked.append(metric)
            return math.isfinite(metric) and self.criterion.accepts(metric, self.baseline["metric"])

        try:
            candidate, info = parts.adaptor.deploy(parts.model, best.trial.config, best.candidate,
                                                   parts.calib_data or [], inputs, accepts)
        except TunekitError as exc:
            log.warning("the tuned model is kept as its trial built it: deploying it failed: %s",
                        exc)
            return {"error": str(exc)}
        info = dict(info, **({"checked_metrics": checked} if checked else {}))
        if candidate is not best.candidate:
            self.best = _Best(best.trial, candidate)
            self._save_best(space)
        if info:
            log.info("deployed: %s", ", ".join(f"{k} {v}" for k, v in info.items()))
        return info

    # ----------------------------------------------------------------------- the loop

    def run(self) -> TuneResult:
        tuning = self.spec.tuning
        started = time.perf_counter()
        self.workspace.prepare(tuning.resume)
        space = self._space()
        self._feed()
        store = self._store()
        stored = store.load() if tuning.resume else None
        if stored and stored.stale:
            log.info("resume: %d interrupted trial(s) will run again", stored.stale)
        self._measure_baseline(store, stored.baseline if stored else None)
        log.info("tuning %d ops with strategy %r; %s", len(space), tuning.strategy.name,
                 self.criterion.describe(self.baseline["metric"]))
        self._calibrate(space)
        previous = {t.config: t for t in stored.trials} if stored else {}
        history = History(self.baseline["metric"])
        ctx = self.context(space, history, tuning.seed)
        stop: TunekitError | None = None
        try:
            status = self._loop(ctx, store, previous, space, started)
        except TunekitError as exc:
            if exc is not self.watch.stopped:
                raise
            status, stop = "failing", exc  # the report and result keep every failure, then stop
        deployed = self._deploy_slow_passing(history, space) if stop is None else None
        fp32_kept = self._keep_fp32_if_none_faster(history)
        if self.best.trial is not None and not self.best.trial.accepted:
            self._save_best(space)  # none passed: the best failing model, saved once (~5-50 ms)
        deployment = deployed if deployed is not None else (
            self._deploy(space) if stop is None else {})
        result = TuneResult(best_model=self.best.candidate,
                            best_trial=self.best.trial, baseline=self.baseline,
                            trials=history.trials, status=status,
                            evaluations=self.evaluations, unrecorded=self.unrecorded,
                            runtimes=dict(self.runtimes),
                            wall_s=time.perf_counter() - started,
                            workspace=self.workspace.path, criterion=self.criterion,
                            framework=self.spec.model.framework, space=space,
                            objective_directions={name: objective.direction for name, objective, _
                                                  in self.parts.objectives},
                            objective_units={name: objective.unit for name, objective, _
                                             in self.parts.objectives},
                            adaptor=self.parts.adaptor, deployment=deployment,
                            adaptor_options=self.spec.model.options, fp32_kept=fp32_kept,
                            sensitivity=ctx.notes.sensitivity)
        write_outputs(result, self.workspace, self.parts.adaptor, self.parts.model_ref,
                      self.spec)
        if stop is not None:
            raise stop
        self.watch.check_end()
        return result

    def _keep_fp32_if_none_faster(self, history: History) -> bool:
        """Where candidates met the goal but none beat FP32 on the objectives, the result is the
        FP32 model itself (a slower "tuned" model would break tunekit's one promise); the best
        model file of an earlier, non-passing best is removed so the workspace holds none."""
        if (self.best.trial is not None and self.best.trial.accepted) \
                or not any(trial.accepted for trial in history):
            return False
        self.best = _Best(None, self.parts.model)
        self.workspace.model_file(self.parts.adaptor.model_suffix).unlink(missing_ok=True)
        log.info("FP32 kept: no candidate that meets the goal is faster than the FP32 model")
        return True

    def _loop(self, ctx: TuneContext, store: Store, previous: dict[QuantConfig, Trial],
              space: TuningSpace, started: float) -> str:
        tuning = self.spec.tuning

        def run_trial(number: int, config: QuantConfig) -> Trial:
            self.watch.check()  # here, not after a trial: the history has recorded them all
            trial, candidate = self._next_trial(number, config, store, previous,
                                                ctx.notes.stage)
            self._keep_if_best(trial, candidate, space)
            self._log_trial(trial, space, replayed=config in previous)
            self.watch.record(trial)
            return trial

        budget = Budget(max_trials=tuning.max_trials, stop_on_first_accept=tuning.timeout == 0,
                        deadline=started + tuning.timeout if tuning.timeout > 0 else math.inf,
                        max_repeats=MAX_REPEATS)
        if tuning.distributed:
            status = self._loop_distributed(ctx, store, previous, space, budget)
        else:
            status = drive(self.parts.strategy, ctx, run_trial, budget)
        if status == "strategy_stuck":
            log.warning("strategy %r keeps proposing evaluated configs; stopping",
                        tuning.strategy.name)
        return status

    def _loop_distributed(self, ctx: TuneContext, store: Store,
                          previous: dict[QuantConfig, Trial], space: TuningSpace,
                          budget: Budget) -> str:
        """The same loop, with each batch queued in the storage for workers (this process
        keeps the strategy, the history and the best model; see :mod:`tunekit.distributed`)."""
        tuning = self.spec.tuning
        job = Job.new(self.spec.source, self.spec.base_dir, self.workspace.path)
        dispatcher = Dispatcher(store, job, self._needed)
        dispatcher.publish()
        local = None
        if tuning.workers:
            local = LocalWorkers(tuning.workers, self.storage(), store.study.study_name,
                                 tuning.heartbeat, self.workspace.file("workers"),
                                 trust_flags(job))
            dispatcher.supervise = local.supervise
        log.info("distributed: study %r in %s, %d local worker(s); more join with: tunekit "
                 "worker --storage URL --study %s", store.study.study_name,
                 storage_label(self.storage()), tuning.workers, store.study.study_name)

        def run_batch(first: int, configs: Sequence[QuantConfig], stop: bool) -> list[Trial]:
            self.watch.check()
            trials = dispatcher.run_batch(first, configs, stop, previous)
            for trial in trials:
                self._keep_if_best(trial, None, space)
                self._log_trial(trial, space, replayed=trial.config in previous)
                self.watch.record(trial)
            recorded.append(sum(trial.config not in previous for trial in trials))
            return trials

        recorded: list[int] = []
        try:
            return drive(self.parts.strategy, ctx, lambda n, c: run_batch(n, [c], False)[0],
                         budget, run_batch=run_batch)
        finally:
            dispatcher.finish()
            if local is not None:
                local.stop()
            evaluated = dispatcher.evaluated()  # also what workers did past a batch's end
            self.evaluations += evaluated
            self.unrecorded = max(0, evaluated - sum(recorded))

    def _next_trial(self, number: int, config: QuantConfig, store: Store,
                    previous: dict[QuantConfig, Trial],
                    stage: str | None = None) -> tuple[Trial, Any]:
        if config in previous:  # resume: answered from storage, not evaluated again
            return replace(previous[config], number=number, stage=stage), None
        store.begin(config)
        trial, candidate = self._run_trial(number, config)
        trial = replace(trial, stage=stage)
        store.finish(trial)
        return trial, candidate

    def _log_trial(self, trial: Trial, space: TuningSpace, replayed: bool = False) -> None:
        label = "stored" if replayed else "trial"
        head = f"{label} {trial.number:>3} │ {trial.config.summary(space.default())}"
        if trial.failed:
            log.info("%s │ failed: %s", head, trial.error)
            return
        sign = "≥" if self.criterion.higher_is_better else "≤"
        target = self.criterion.target(self.baseline["metric"])
        verdict = "meets goal" if trial.accepted else "below goal"
        line = f"{head} │ metric {trial.metric:.4f} (target {sign} {target:.4f}) {verdict}"
        for name, objective, _ in self.parts.objectives:
            if name in trial.details:
                line += " │ " + format_objective(name, objective, trial.details[name],
                                                  self._reference(name, trial.details),
                                                  trial.details, self.runtimes.get(trial.number))
        log.info("%s", line)


def _all_fp32(config: QuantConfig) -> bool:
    """Whether ``config`` leaves every op in FP32: the FP32 model, whatever its timing says
    (noise timed it 1.03× "faster" on a loaded machine)."""
    return all(c.precision == "fp32" for c in config.ops.values())


def storage_label(storage: str) -> str:
    """``storage`` for logs and messages: a URL's password hidden."""
    if "://" not in storage:
        return storage
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return storage.split("://")[0] + "://…"


def storage_error(storage: str, exc: Exception) -> str:
    """What went wrong opening ``storage`` and what to do, per kind of failure."""
    where, kind = storage_label(storage), type(exc).__name__
    if kind == "ArgumentError" or kind == "NoSuchModuleError":
        return (f"{where!r} is not a storage URL tunekit can open ({exc}); give --storage as "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, sqlite:///PATH, or a file path "
                "for a journal")
    if kind == "OperationalError":
        return (f"cannot reach the database {where!r} given by --storage ({exc}); check that "
                "the server runs and accepts connections from this machine, and the host, "
                "port, user, password and database name")
    if kind in ("ImportError", "ModuleNotFoundError"):
        return (f"the driver for {where!r} is missing ({exc}); pip install "
                "'tunekit[distributed]' (psycopg2-binary) for PostgreSQL")
    return f"cannot open the history storage {where!r}: {kind}: {exc}"
