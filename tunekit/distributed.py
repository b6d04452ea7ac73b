"""The coordinator's side of distributed tuning: a batch of configs becomes WAITING optuna trials,
workers claim and answer them, and the batch's trials come back in batch order.

Everything goes through the optuna storage the history already lives in (PostgreSQL for several
machines, SQLite for local workers), with optuna's own machinery: ``enqueue_trial`` for the queue,
the atomic WAITING → RUNNING update of ``set_trial_state_values`` for a claim, heartbeats and
``fail_stale_trials`` + ``RetryHeartbeatStaleTrialCallback`` to re-queue the trial of a dead
worker (see :func:`tunekit.storage.rdb_storage`). There is no protocol of tunekit's own to keep
alive: the coordinator and the workers never talk to each other, only to the database.

Each queued trial carries its *task* (``<run>:<trial number>``). A task may have several optuna
trials (a dead worker's trial and its retry); the first finished one with a result answers it
and the others are ignored, so no trial is lost or counted twice. See docs/distributed.md.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunekit.errors import ConfigError, TunekitError
from tunekit.history import Trial
from tunekit.space import QuantConfig
from tunekit.storage import fail_stale
from tunekit.store import DISCARDED, Store, retried

log = logging.getLogger("tunekit")

#: Study user attribute: the :class:`Job` workers serve.
JOB = "tunekit.job"
#: Study user attribute: the run id of the last job that ended (its workers exit).
DONE = "tunekit.done"
#: Study user attribute: ``{"run", "error"}`` of a worker that stopped on an error that every
#: trial would hit (a configuration error); the coordinator stops with it.
FAILED = "tunekit.failed"
#: Trial user attributes of a queued config.
TASK, NUMBER, NEEDED, WORKER = "tunekit.task", "tunekit.number", "tunekit.needed", "tunekit.worker"

#: The exit code of ``tunekit worker`` for a configuration or usage error (``tunekit.cli``).
EXIT_USAGE = 2

#: Seconds between two looks at the storage while a batch is out.
POLL_S = 0.2

#: A ``package.module:attr`` reference among a config's values (what a worker imports).
_REFERENCE = re.compile(r"^([A-Za-z_][\w.]*):[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class Job:
    """What a worker needs to evaluate configs exactly as the coordinator would: the config
    mapping (overrides applied), the folder its ``module:attr`` references resolve from, and the
    workspace (its ``calibration`` folder caches the calibration statistics)."""

    run: str
    config: Mapping[str, Any]
    base_dir: str
    workspace: str

    def to_attr(self) -> dict[str, Any]:
        return {"run": self.run, "config": dict(self.config), "base_dir": self.base_dir,
                "workspace": self.workspace}

    @classmethod
    def from_attr(cls, attr: Mapping[str, Any]) -> Job:
        return cls(attr["run"], attr["config"], attr["base_dir"], attr["workspace"])

    @classmethod
    def new(cls, config: Mapping[str, Any], base_dir: Path, workspace: Path) -> Job:
        try:
            plain = json.loads(json.dumps(config))
        except (TypeError, ValueError) as exc:
            raise ConfigError("tuning.study", "distributed tuning needs a config that workers "
                                              f"can rebuild from YAML values ({exc}); run it "
                                              "with `tunekit tune CONFIG.yaml`") from exc
        return cls(uuid.uuid4().hex[:12], plain, str(base_dir.resolve()),
                   str(workspace.resolve()))


class Dispatcher:
    """Answers batches through the storage (a :data:`tunekit.loop.RunBatch` with extras)."""

    def __init__(self, store: Store, job: Job, needed: Callable[[], str | float],
                 supervise: Callable[[], None] = lambda: None) -> None:
        self.store, self.job, self.needed, self.supervise = store, job, needed, supervise
        self._waiting_since = 0.0

    def publish(self) -> None:
        """Cancel what an earlier run left queued, then post the job (workers start on it)."""
        from optuna.trial import TrialState

        study = self.store.study
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            self.store.discard(frozen, "cancelled: left queued by an earlier run")
        study.set_user_attr(JOB, self.job.to_attr())

    def finish(self) -> None:
        """Tell the workers of this job that it ended."""
        self.store.study.set_user_attr(DONE, self.job.run)

    def evaluated(self) -> int:
        """How many configs the workers of this job evaluated and stored, as their logs count
        them: the history's trials, and also the configs past a batch's first accepted one that
        a worker had finished before the batch was cut (speculative work, not in the history)."""
        from optuna.trial import TrialState

        prefix = f"{self.job.run}:"
        complete = TrialState.COMPLETE
        # a cancelled trial whose worker finished first is COMPLETE (the worker's tell won over
        # the cancel, which marks it discarded first): that worker evaluated it too
        return sum(1 for frozen in self.store.study.get_trials(deepcopy=False)
                   if str(frozen.user_attrs.get(TASK, "")).startswith(prefix)
                   and "state" in frozen.user_attrs
                   and (not frozen.user_attrs.get(DISCARDED) or frozen.state == complete))

    def run_batch(self, first: int, configs: Sequence[QuantConfig], stop_at_accept: bool,
                  known: Mapping[QuantConfig, Trial]) -> list[Trial]:
        """Queue ``configs`` not in ``known`` (trials stored by an earlier run), wait for their
        answers and return the trials in batch order, numbered from ``first``; with
        ``stop_at_accept``, up to the first accepted one, cancelling the rest."""
        tasks = [f"{self.job.run}:{first + i}" for i in range(len(configs))]
        needed = self.needed()
        for task, number, config in zip(tasks, range(first, first + len(configs)), configs):
            if config not in known:
                self.store.study.enqueue_trial({}, user_attrs={
                    "config": config.to_json(), TASK: task, NUMBER: number, NEEDED: needed})
        self._waiting_since = time.monotonic()
        while True:
            fail_stale(self.store.study)
            answers = self._answers(set(tasks))
            ordered = [known.get(config) or answers.get(task)
                       for task, config in zip(tasks, configs)]
            count = _answered(ordered, stop_at_accept)
            if count is not None:
                self._cancel(set(tasks[count:]))
                return [_numbered(trial, first + i)
                        for i, trial in enumerate(ordered[:count]) if trial is not None]
            self._raise_if_a_worker_failed()
            self.supervise()
            self._say_if_idle(len(configs) - sum(t is not None for t in ordered))
            time.sleep(POLL_S)

    def _raise_if_a_worker_failed(self) -> None:
        failed = self.store.study.user_attrs.get(FAILED)
        if failed and failed.get("run") == self.job.run:
            raise TunekitError(f"a worker stopped: {failed['error']}")

    def _answers(self, tasks: set[str]) -> dict[str, Trial]:
        """Per task of ``tasks``, the first finished trial with a result."""
        from optuna.trial import TrialState as TS

        everything = self.store.study.get_trials(deepcopy=False)
        given_up = retried(everything)
        found: dict[str, Trial] = {}
        for frozen in everything:
            attrs = frozen.user_attrs
            task = attrs.get(TASK)
            if task in tasks and task not in found and frozen.state in (TS.COMPLETE, TS.FAIL) \
                    and "state" in attrs and not attrs.get(DISCARDED) \
                    and frozen.number not in given_up:
                found[task] = Trial.from_attrs(int(attrs[NUMBER]), attrs)
        return found

    def _cancel(self, tasks: set[str]) -> None:
        """Discard the unfinished trials of ``tasks`` (the batch ended before them)."""
        if not tasks:
            return
        from optuna.trial import TrialState as TS

        for frozen in self.store.study.get_trials(deepcopy=False,
                                                  states=(TS.WAITING, TS.RUNNING)):
            if frozen.user_attrs.get(TASK) in tasks:  # a worker may have finished it meanwhile:
                # then its result stays in the storage, unread
                self.store.discard(frozen, "cancelled: the batch ended at an earlier config")

    def _say_if_idle(self, left: int) -> None:
        """Log once a minute while nothing answers, naming the command that starts a worker."""
        if time.monotonic() - self._waiting_since < 60:
            return
        self._waiting_since = time.monotonic()
        log.info("waiting for %d trial(s); workers join with: tunekit worker --storage URL "
                 "--study %s", left, self.store.study.study_name)


def _answered(ordered: Sequence[Trial | None], stop_at_accept: bool) -> int | None:
    """How many of the batch's trials make its answer, or None while it is incomplete: all of
    them, or with ``stop_at_accept`` those up to the first accepted one (every trial before it
    must be in, so the winner is the first accepted config in batch order)."""
    for i, trial in enumerate(ordered):
        if trial is None:
            return None
        if stop_at_accept and trial.accepted:
            return i + 1
    return len(ordered)


def _numbered(trial: Trial | None, number: int) -> Trial:
    assert trial is not None
    return replace(trial, number=number)


def trust_flags(job: Job) -> list[str]:
    """The ``tunekit worker`` flags that allow exactly what the coordinator's own config runs:
    the modules it references, imported from its folder, and its ``allow_pickle``. Local workers
    get these, so they trust their command line, not the database (see :class:`worker.Trust`)."""
    flags = ["--code-dir", job.base_dir]
    for module in sorted(set(_modules(job.config))):
        flags += ["--allow-code", module]
    if ((job.config.get("model") or {}).get("options") or {}).get("allow_pickle"):
        flags.append("--allow-pickle")
    return flags


def _modules(value: Any) -> list[str]:
    """The modules of every ``module:attr`` reference in a config mapping, at any depth."""
    if isinstance(value, Mapping):
        return [m for item in value.values() for m in _modules(item)]
    if isinstance(value, (list, tuple)):
        return [m for item in value for m in _modules(item)]
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    return [match.group(1)] if match else []


class LocalWorkers:
    """``--workers N``: N ``tunekit worker`` processes on this machine against the same
    storage; one that exits before the job ends is started again (its trial is re-queued by
    the heartbeat, like any worker's). ``flags`` are their trust flags (:func:`trust_flags`)."""

    def __init__(self, count: int, storage: str, study: str, heartbeat: int,
                 logs: Path, flags: Sequence[str] = ()) -> None:
        self.command = [sys.executable, "-m", "tunekit.cli", "worker", "--storage", storage,
                        "--study", study, "--heartbeat", str(heartbeat), *flags]
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.restarts = 0
        for index in range(count):
            self.processes.append(self._start(index))

    def _start(self, index: int) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"worker-{index}.log", "ab") as out:
            return subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)

    def supervise(self) -> None:
        for index, process in enumerate(self.processes):
            code = process.poll()
            if code == EXIT_USAGE:  # a config or storage error: every restart would fail alike
                raise TunekitError(f"local worker {index} stopped on an error; see "
                                   f"{self.logs / f'worker-{index}.log'}")
            if code is not None:
                self.restarts += 1
                if self.restarts > 10 * len(self.processes):
                    raise TunekitError(f"local workers keep exiting (last exit code {code}); "
                                       f"see {self.logs}/worker-*.log")
                log.warning("local worker %d (pid %d) exited with code %s; starting it again",
                            index, process.pid, code)
                self.processes[index] = self._start(index)

    def stop(self, wait_s: float = 30.0) -> None:
        """Wait for the workers to see the job's end, then stop the ones still running."""
        deadline = time.monotonic() + wait_s
        for process in self.processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait()


__all__ = ["DONE", "JOB", "Dispatcher", "Job", "LocalWorkers", "trust_flags"]
