"""``tunekit worker``: claim queued trials of a study, evaluate them, store the results.

A worker rebuilds the model, data and evaluation from the :class:`~tunekit.distributed.Job` the
coordinator posted in the study (the config mapping, the folder its references resolve from, the
workspace whose ``calibration`` cache it reuses), takes the FP32 baseline from the study, and then
evaluates exactly as the coordinator would have. While it evaluates, a thread records optuna
heartbeats; if the process dies, the coordinator (or any worker) fails the trial once its
heartbeats stop and optuna queues it again.

The study is not trusted: whoever can write to its database writes the job. The worker imports
only the modules its own command line allows (``--allow-code``), from its own folder
(``--code-dir``, default the current directory), and unpickles a model file only with
``--allow-pickle``; ``--trust-study`` restores "do what the study says" for a database that only
trusted people can write (see :class:`Trust` and docs/distributed.md).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunekit.distributed import DONE, FAILED, JOB, NEEDED, NUMBER, WORKER, Job
from tunekit.errors import ConfigError, TunekitError
from tunekit.references import allowed_code
from tunekit.runner import TrialRunner
from tunekit.space import QuantConfig
from tunekit.storage import fail_stale
from tunekit.storage import storage_error, storage_label
from tunekit.store import Store
from tunekit.workspace import Workspace

log = logging.getLogger("tunekit")

POLL_S = 0.2

#: Errors opening the storage that waiting cannot cure.
_LASTING = frozenset({"ArgumentError", "NoSuchModuleError", "ImportError", "ModuleNotFoundError"})


@dataclass(frozen=True)
class Trust:
    """What the worker's own command line lets a study's job make it do."""

    #: module prefixes whose code the job's ``module:attr`` references may import
    allow_code: tuple[str, ...] = ()
    #: the folder those modules are imported from (None: the current directory)
    code_dir: Path | None = None
    #: honour the job's ``model.options.allow_pickle`` (unpickling runs code from the file)
    allow_pickle: bool = False
    #: do whatever the job says: its modules, its folder, its options
    trust_study: bool = False

    def job_config(self, job: Job) -> tuple[dict[str, Any], Path]:
        """The job's config as this worker will run it, and the folder its references import
        from: the job's own with ``trust_study``; else the worker's, ``allow_pickle`` dropped
        unless allowed."""
        raw = copy.deepcopy(dict(job.config))
        if self.trust_study:
            return raw, Path(job.base_dir)
        options = (raw.get("model") or {}).get("options") or {}
        if options.get("allow_pickle") and not self.allow_pickle:
            options["allow_pickle"] = False
            log.warning("the study's model.options.allow_pickle is ignored: this worker "
                        "unpickles a model file only when started with --allow-pickle")
        return raw, (self.code_dir or Path.cwd()).resolve()

    @property
    def modules(self) -> tuple[str, ...] | None:
        """The modules :func:`~tunekit.references.allowed_code` lets through (None: any)."""
        return None if self.trust_study else self.allow_code


def open_study(storage: str, study: str, heartbeat: int, wait_s: float) -> Store:
    """The study ``study`` in ``storage``, waiting up to ``wait_s`` for a coordinator to create
    it; a clear error naming the flags if it does not appear."""
    if "://" not in storage:
        raise ConfigError("--storage", f"a worker needs a database URL (postgresql://… for "
                                       f"several machines, sqlite:///… on one), got {storage!r}: "
                                       "a journal file has no heartbeats to re-queue the trial "
                                       "of a dead worker")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return Store(storage, study, None, heartbeat=heartbeat)
        except KeyError:
            if time.monotonic() >= deadline:
                raise ConfigError("--study", f"there is no study {study!r} in --storage "
                                             f"{storage_label(storage)} (waited {wait_s:g} s); "
                                             "start the coordinator first (tunekit tune "
                                             f"CONFIG.yaml --storage URL --study {study}) or "
                                             "check the name") from None
        except Exception as exc:
            # a server still starting, or processes creating optuna's tables in a new database
            # at the same moment, pass; a bad URL or a missing driver does not
            if time.monotonic() >= deadline or type(exc).__name__ in _LASTING:
                raise ConfigError("--storage", storage_error(storage, exc)) from exc
            log.debug("storage not ready (%s); retrying", exc)
        time.sleep(POLL_S * 5)


def wait_for_job(store: Store, wait_s: float) -> Job:
    """The job posted in the study, once there is one that has not ended."""
    deadline = time.monotonic() + wait_s
    while (attr := _open_job(store.study.user_attrs)) is None:
        if time.monotonic() >= deadline:
            raise ConfigError("--study", f"study {store.study.study_name!r} has no tuning to "
                                         f"work on (waited {wait_s:g} s); start the "
                                         "coordinator: tunekit tune CONFIG.yaml --storage URL "
                                         f"--study {store.study.study_name}")
        time.sleep(POLL_S * 5)
    return Job.from_attr(attr)


def _open_job(attrs: dict[str, Any]) -> dict[str, Any] | None:
    job = attrs.get(JOB)
    return job if job is not None and attrs.get(DONE) != job["run"] else None


def run_worker(storage: str, study: str, *, heartbeat: int = 10, wait_s: float = 600.0,
               workspace: Path | None = None, trust: Trust = Trust()) -> int:
    """Serve the study's current job until it ends; returns how many trials this worker
    evaluated. ``trust`` says what of the job's code and options it may run."""
    store = open_study(storage, study, heartbeat, wait_s)
    job = wait_for_job(store, wait_s)
    with allowed_code(trust.modules):
        try:
            runner = _runner(job, store, workspace, trust)
        except ConfigError as exc:  # e.g. code this worker may not import: the coordinator
            # stops with the message instead of waiting for workers that will never serve
            store.study.set_user_attr(FAILED, {"run": job.run, "error": str(exc)})
            raise
        return _serve(store, job, runner)


def _serve(store: Store, job: Job, runner: TrialRunner) -> int:
    """Claim and evaluate the job's trials until it ends; the count evaluated here."""
    study = store.study.study_name
    name = f"{socket.gethostname()}:{os.getpid()}"
    log.info("worker %s serves run %s of study %r", name, job.run, study)
    evaluated = 0
    while True:
        fail_stale(store.study)
        claimed = store.claim(WORKER, name)
        if claimed is None:
            attrs = store.study.user_attrs
            if attrs.get(DONE) == job.run or attrs.get(JOB, {}).get("run") != job.run:
                log.info("run %s ended; %d trial(s) evaluated here", job.run, evaluated)
                return evaluated
            time.sleep(POLL_S)
            continue
        try:
            evaluated += _evaluate(runner, store, claimed)
        except TunekitError as exc:  # wrong for every trial alike (a config error): the
            # coordinator stops with the message, as a single process would
            store.study.set_user_attr(FAILED, {"run": job.run, "error": str(exc)})
            raise


def _evaluate(runner: TrialRunner, store: Store, attrs: dict[str, Any]) -> int:
    """Evaluate one claimed trial with heartbeats, under the signal its proposal was queued
    with; 1 if its result was stored."""
    number, config = int(attrs[NUMBER]), QuantConfig.from_json(attrs["config"])
    with _heartbeats(store):
        trial, _ = runner.run(number, config, needed=attrs.get(NEEDED, "exact"))
    if not store.finish_claimed(trial):
        log.warning("trial %d was given up (heartbeat lost or cancelled) before it finished; "
                    "its result is dropped", number)
        return 0
    log.info("trial %d: %s", number, "failed" if trial.failed else f"metric {trial.metric:.4f}")
    return 1


@contextmanager
def _heartbeats(store: Store) -> Iterator[None]:
    """Record a heartbeat for the claimed trial now and every ``heartbeat`` s until the block
    ends (optuna's own heartbeat thread runs only inside ``Study.optimize``)."""
    from optuna.exceptions import StorageInternalError

    trial_id, interval = store.claimed_id, store.heartbeat_interval
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                store.heartbeat(trial_id)
            except StorageInternalError as exc:  # a lost connection
                # must not kill the evaluation: if it lasts, the trial is re-queued
                log.warning("heartbeat of trial id %s failed: %s", trial_id, exc)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="tunekit-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _runner(job: Job, store: Store, workspace: Path | None, trust: Trust) -> TrialRunner:
    """A trial runner for ``job``'s config, set up like the coordinator's (space, the
    coordinator's baseline, calibration from the workspace cache) but writing nothing to the
    workspace."""
    from tunekit import api, config

    raw, base_dir = trust.job_config(job)
    spec = config.parse(raw, base_dir=base_dir)
    tuning = replace(spec.tuning, workspace=workspace or Path(job.workspace), study=None,
                     workers=0)
    runner = TrialRunner(api.parts_from_config(replace(spec, tuning=tuning)),
                         Workspace(tuning.workspace))
    baseline = store.study.user_attrs.get("baseline")
    if not baseline:
        raise ConfigError("--study", f"study {store.study.study_name!r} has no FP32 baseline "
                                     "yet; is its coordinator still starting?")
    space = runner.set_up(write=False)
    runner.measure_baseline(baseline)
    runner.calibrate(space)
    return runner


__all__ = ["Trust", "open_study", "run_worker"]
