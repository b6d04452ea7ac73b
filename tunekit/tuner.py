"""The tuning loop: the only module that knows every part.

baseline → (strategy proposes → runner builds, evaluates, measures, scores → history persists →
keeper keeps the best) until the goal, the budget or the strategy ends. Every trial is in the
optuna storage before and after it runs, the best passing model so far is on disk as soon as it is
found (a failing best at the end), and a result is always returned, also when the goal is not met.

The Tuner owns the workspace, the store, the history, the best model and the loop (in this
process, or queued for distributed workers); running the model is the
:class:`~tunekit.runner.TrialRunner`'s, choosing the result the :class:`~tunekit.keeper.Keeper`'s.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from tunekit.distributed import Dispatcher, Job, LocalWorkers, trust_flags
from tunekit.errors import ConfigError, TunekitError
from tunekit.failures import FailureWatch
from tunekit.history import History, Trial
from tunekit.keeper import Keeper
from tunekit.loop import Budget, drive
from tunekit.result import TuneResult, write_outputs
from tunekit.runner import CALIBRATION, Parts, TrialRunner
from tunekit.space import QuantConfig, TuningSpace
from tunekit.speed import format_objective
from tunekit.storage import storage_error, storage_label
from tunekit.store import Store
from tunekit.strategy import Batch, Needed, TuneContext
from tunekit.workspace import HISTORY, HISTORY_DB, Workspace

log = logging.getLogger("tunekit")

#: Consecutive proposals answered from the history after which a strategy is deemed stuck.
MAX_ANSWERED_REPEATS = 1000


class Tuner:
    """One tuning: :meth:`run` returns its :class:`TuneResult`."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.spec = parts.spec
        self.criterion = parts.spec.tuning.criterion
        self.workspace = Workspace(parts.spec.tuning.workspace)
        self.runner = TrialRunner(parts, self.workspace)
        self.keeper = Keeper(self.runner, self.workspace)
        self.watch = FailureWatch(parts.spec.tuning.failure_share)
        self.watch.causes = self.runner.causes  # what each failed trial raised, for its stop
        #: distributed: evaluations workers made past a batch's first accepted config
        self.unrecorded = 0
        #: where the run's time went outside the trials (see :attr:`TuneResult.timings`)
        self.timings: dict[str, float] = {"history_s": 0.0}

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

    # ----------------------------------------------------------------------- the run

    def run(self) -> TuneResult:
        tuning, runner = self.spec.tuning, self.runner
        started = time.perf_counter()
        self.workspace.prepare(tuning.resume)
        space = runner.set_up()
        store = self._store()
        stored = store.load() if tuning.resume else None
        if stored and stored.stale:
            log.info("resume: %d interrupted trial(s) will run again", stored.stale)
        if runner.measure_baseline(stored.baseline if stored else None):
            store.save_baseline(runner.baseline)
        else:
            log.info("baseline (from the stored history): %.4f", runner.baseline["metric"])
        log.info("tuning %d ops with strategy %r; %s", len(space), tuning.strategy.name,
                 self.criterion.describe(runner.baseline["metric"]))
        runner.calibrate(space)
        previous = {t.config: t for t in stored.trials} if stored else {}
        history = History(runner.baseline["metric"])
        ctx = runner.context(space, history, tuning.seed)
        stop: TunekitError | None = None
        with self._timed("loop_s"):
            try:
                status = self._loop(ctx, store, previous, started)
            except TunekitError as exc:
                if exc is not self.watch.stopped:
                    raise
                status, stop = "failing", exc  # the result keeps every failure, then stops
        with self._timed("deploy_s"):
            deployment, fp32_kept = self.keeper.finish(history, stopped=stop is not None)
        result = self._result(history, status, space, started, deployment, fp32_kept, ctx)
        with self._timed("outputs_s"):
            write_outputs(result, self.workspace, self.parts.adaptor, self.parts.model_ref,
                          self.spec)
        result.timings = {**runner.timings, **self.timings}
        if stop is not None:
            raise stop
        self.watch.check_end()
        return result

    def _result(self, history: History, status: str, space: TuningSpace, started: float,
                deployment: dict, fp32_kept: bool, ctx: TuneContext) -> TuneResult:
        runner, objectives, best = self.runner, self.parts.objectives, self.keeper.best
        return TuneResult(best_model=best.candidate, best_trial=best.trial,
                          baseline=runner.baseline, trials=history.trials, status=status,
                          evaluations=runner.evaluations, unrecorded=self.unrecorded,
                          runtimes=dict(runner.runtimes), wall_s=time.perf_counter() - started,
                          workspace=self.workspace.path, criterion=self.criterion,
                          framework=self.spec.model.framework, space=space,
                          objective_directions={n: o.direction for n, o, _ in objectives},
                          objective_units={n: o.unit for n, o, _ in objectives},
                          adaptor=self.parts.adaptor, deployment=deployment,
                          adaptor_options=self.spec.model.options, fp32_kept=fp32_kept,
                          sensitivity=ctx.notes.sensitivity)

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def _loop(self, ctx: TuneContext, store: Store, previous: dict[QuantConfig, Trial],
              started: float) -> str:
        tuning = self.spec.tuning

        def run_trial(number: int, config: QuantConfig, needed: Needed) -> Trial:
            self.watch.check()  # here, not after a trial: the history has recorded them all
            trial, candidate = self._next_trial(number, config, needed, store, previous,
                                                ctx.notes.stage)
            self._settle(trial, candidate, ctx.space, replayed=config in previous)
            return trial

        budget = Budget(max_trials=tuning.max_trials, stop_on_first_accept=tuning.timeout == 0,
                        deadline=started + tuning.timeout if tuning.timeout > 0 else math.inf,
                        max_repeats=MAX_ANSWERED_REPEATS)
        if tuning.distributed:
            status = self._loop_distributed(ctx, store, previous, budget)
        else:
            status = drive(self.parts.strategy, ctx, run_trial, budget)
        if status == "strategy_stuck":
            log.warning("strategy %r keeps proposing evaluated configs; stopping",
                        tuning.strategy.name)
        return status

    def _settle(self, trial: Trial, candidate: object, space: TuningSpace,
                replayed: bool) -> None:
        """A trial's aftermath: the best model, its log line, the failure watch."""
        self.keeper.offer(trial, candidate)
        self._log_trial(trial, space, replayed)
        self.watch.record(trial)

    def _loop_distributed(self, ctx: TuneContext, store: Store,
                          previous: dict[QuantConfig, Trial], budget: Budget) -> str:
        """The same loop, with each batch queued in the storage for workers (this process
        keeps the strategy, the history and the best model; see :mod:`tunekit.distributed`)."""
        tuning = self.spec.tuning
        job = Job.new(self.spec.source, self.spec.base_dir, self.workspace.path)
        dispatcher = Dispatcher(store, job)
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
        recorded: list[int] = []

        def run_batch(first: int, batch: Batch, stop: bool) -> list[Trial]:
            self.watch.check()
            trials = dispatcher.run_batch(first, batch, stop, previous, needed=batch.needed)
            for trial in trials:
                self._settle(trial, None, ctx.space, replayed=trial.config in previous)
            recorded.append(sum(trial.config not in previous for trial in trials))
            return trials

        try:
            return drive(self.parts.strategy, ctx,
                         lambda n, c, needed: run_batch(n, Batch((c,), needed=needed), False)[0],
                         budget, run_batch=run_batch)
        finally:
            dispatcher.finish()
            if local is not None:
                local.stop()
            evaluated = dispatcher.evaluated()  # also what workers did past a batch's end
            self.runner.evaluations += evaluated
            self.unrecorded = max(0, evaluated - sum(recorded))

    def _next_trial(self, number: int, config: QuantConfig, needed: Needed, store: Store,
                    previous: dict[QuantConfig, Trial],
                    stage: str | None = None) -> tuple[Trial, object]:
        if config in previous:  # resume: answered from storage, not evaluated again
            return replace(previous[config], number=number, stage=stage), None
        with self._timed("history_s"):
            store.begin(config)
        trial, candidate = self.runner.run(number, config, needed)
        trial = replace(trial, stage=stage)
        with self._timed("history_s"):
            store.finish(trial)
        return trial, candidate

    def _log_trial(self, trial: Trial, space: TuningSpace, replayed: bool = False) -> None:
        label = "stored" if replayed else "trial"
        head = f"{label} {trial.number:>3} │ {trial.config.summary(space.default())}"
        if trial.failed:
            log.info("%s │ failed: %s", head, trial.error)
            return
        sign = "≥" if self.criterion.higher_is_better else "≤"
        target = self.criterion.target(self.runner.baseline["metric"])
        verdict = "meets goal" if trial.accepted else "below goal"
        line = f"{head} │ metric {trial.metric:.4f} (target {sign} {target:.4f}) {verdict}"
        for name, objective, _ in self.parts.objectives:
            if name in trial.details:
                line += " │ " + format_objective(name, objective, trial.details[name],
                                                  self.runner.reference(name, trial.details),
                                                  trial.details,
                                                  self.runner.runtimes.get(trial.number))
        log.info("%s", line)


__all__ = ["CALIBRATION", "MAX_ANSWERED_REPEATS", "Parts", "Tuner"]
