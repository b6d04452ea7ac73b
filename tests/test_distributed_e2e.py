"""Distributed tuning end to end: real ``tunekit tune`` coordinators and ``tunekit worker``
processes against a real PostgreSQL server, on the fallback example (which needs op-wise
fallback to meet its goal).

- 1 worker and 2 workers reach the result of a single-process run: same best config, same
  trial, same metric, same number of trials; so do 2 local workers (``--workers 2``) on the
  default SQLite history, without a server;
- a worker ``kill -9``-ed in the middle of a trial loses nothing: its trial is re-queued after its
  heartbeats stop, answered once by the other worker, and the tuning ends with the same result.
  (A slowed copy of the example makes "the middle of a trial" last seconds.)
- a coordinator stopped short resumes from the stored history to the same result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
FALLBACK = ROOT / "examples" / "digits_pytorch" / "fallback.yaml"
SLOW = ROOT / "benchmarks" / "workloads" / "slow_digits.yaml"
HEARTBEAT = "1"


def env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TUNEKIT_CACHE_DIR": str(cache), **extra}


def tune(config: Path, workspace: Path, environ: dict[str, str], *args: str) -> list[str]:
    return [sys.executable, "-m", "tunekit.cli", "tune", str(config), "--workspace",
            str(workspace), "-q", *args]


def worker(url: str, study: str, config: Path) -> list[str]:
    """A worker allowed the code of ``config`` (its modules, from its folder), as a user
    starting one for that tuning would allow it."""
    from tunekit.config import read_yaml
    from tunekit.distributed import Job, trust_flags

    flags = trust_flags(Job.new(read_yaml(config), config.parent, config.parent))
    return [sys.executable, "-m", "tunekit.cli", "worker", "--storage", url, "--study", study,
            "--heartbeat", HEARTBEAT, *flags]


def result(workspace: Path) -> dict[str, Any]:
    best = json.loads((workspace / "best_config.json").read_text())
    outcome = json.loads((workspace / "result.json").read_text())
    return {"ops": best["ops"], "trial": best["trial"], "metric": best["metric"],
            "met": outcome["met"], "trials": outcome["trials"]}


def single_process(config: Path, tmp: Path, environ: dict[str, str],
                   code: int = 0) -> dict[str, Any]:
    workspace = tmp / "single"
    done = subprocess.run(tune(config, workspace, environ), env=environ, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == code, done.stderr
    return result(workspace)


def distributed(config: Path, tmp: Path, environ: dict[str, str], url: str, workers: int,
                victim: bool = False) -> tuple[dict[str, Any], str]:
    """Coordinator + ``workers`` worker processes; with ``victim``, the first worker is killed
    with SIGKILL while it evaluates a trial. Returns the result and the study name."""
    study = f"e2e-{uuid.uuid4().hex[:8]}"
    workspace = tmp / study
    coordinator = subprocess.Popen(
        tune(config, workspace, environ, "--storage", url, "--study", study, "--heartbeat",
             HEARTBEAT), env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    logs = [tmp / f"{study}-worker-{i}.log" for i in range(workers)]
    pool = [subprocess.Popen(worker(url, study, config), env=environ, stdout=subprocess.DEVNULL,
                             stderr=log.open("w")) for log in logs]
    try:
        if victim:
            kill_mid_trial(url, study, pool[0])
        _, err = coordinator.communicate(timeout=600)
        assert coordinator.returncode == 0, err
        for process, log in list(zip(pool, logs))[1 if victim else 0:]:
            assert process.wait(60) == 0, log.read_text()
    finally:
        for process in [coordinator, *pool]:
            if process.poll() is None:
                process.kill()
                process.wait()
    return result(workspace), study


def kill_mid_trial(url: str, study: str, process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process`` once it has claimed a trial and is evaluating it."""
    from tunekit.store import Store

    deadline = time.monotonic() + 300
    store = None
    while time.monotonic() < deadline:
        try:
            store = store or Store(url, study, None)
        except KeyError:  # the coordinator has not created the study yet
            time.sleep(0.5)
            continue
        running = [t for t in store.study.get_trials(deepcopy=False)
                   if t.state.name == "RUNNING"
                   and str(t.user_attrs.get("tunekit.worker", "")).endswith(f":{process.pid}")]
        if running:
            time.sleep(0.5)  # inside the evaluation, not at its first instruction
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.1)
    pytest.fail("the worker to kill never claimed a trial")


@pytest.mark.slow
def test_one_and_two_workers_reach_the_single_process_result(postgres_url: str,
                                                             tmp_path: Path) -> None:
    environ = env(tmp_path / "cache")
    expected = single_process(FALLBACK, tmp_path, environ)
    assert expected["met"] and expected["trials"] > 1  # a real fallback case
    one, _ = distributed(FALLBACK, tmp_path, environ, postgres_url, workers=1)
    two, _ = distributed(FALLBACK, tmp_path, environ, postgres_url, workers=2)
    assert one == expected, (one, expected)
    assert two == expected, (two, expected)
    # one machine, no server: --workers 2 starts two local workers on an SQLite history
    local = tmp_path / "local"
    done = subprocess.run(tune(FALLBACK, local, environ, "--workers", "2", "--heartbeat",
                               HEARTBEAT), env=environ, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert (local / "history.db").exists() and len(list((local / "workers").iterdir())) == 2
    assert result(local) == expected, (result(local), expected)


@pytest.mark.slow
def test_a_worker_killed_mid_trial_loses_nothing(postgres_url: str, tmp_path: Path) -> None:
    from tunekit.store import Store, retried

    environ = env(tmp_path / "cache", TUNEKIT_SLOW_EVAL_S="0.3")
    expected = single_process(SLOW, tmp_path, environ)
    survived, study = distributed(SLOW, tmp_path, environ, postgres_url, workers=2, victim=True)
    assert survived == expected, (survived, expected)
    trials = Store(postgres_url, study, None).study.get_trials(deepcopy=False)
    assert retried(trials), "the killed worker's trial was not re-queued"
    # every trial of the history was answered exactly once by a finished optuna trial
    answered: dict[str, int] = {}
    given_up = retried(trials)
    for frozen in trials:
        task = frozen.user_attrs.get("tunekit.task")
        if frozen.state.name == "COMPLETE" and frozen.number not in given_up and task:
            answered[task] = answered.get(task, 0) + 1
    assert len(answered) >= expected["trials"]
    assert set(answered.values()) == {1}


@pytest.mark.slow
def test_a_distributed_tuning_cut_short_resumes_from_its_history(tmp_path: Path) -> None:
    """The coordinator stops at a trial budget of 2; ``--resume`` answers those trials from the
    SQLite history and ends where a single uninterrupted process does (the tiny project spends
    its budget of 8 without meeting its goal, so the result is the best of 8)."""
    from tiny_project import write_project

    config = write_project(tmp_path / "project")
    environ = env(tmp_path / "cache")
    expected = single_process(config, tmp_path, environ, code=3)  # 8 trials, goal missed
    assert expected["trials"] == 8
    workspace = tmp_path / "resumed"
    local = ("--workers", "1", "--heartbeat", HEARTBEAT)
    cut = subprocess.run(tune(config, workspace, environ, *local, "--max-trials", "2"),
                         env=environ, capture_output=True, text=True, timeout=600, check=False)
    assert cut.returncode == 3, cut.stderr  # budget spent after 2 trials
    done = subprocess.run(tune(config, workspace, environ, *local, "--resume"), env=environ,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 3, done.stderr
    assert result(workspace) == expected, (result(workspace), expected)
