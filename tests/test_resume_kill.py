"""``kill -9`` a real ``tunekit tune`` process at random moments, resume it, and compare.

The kill points are drawn per seed: the process is killed once its journal holds a random number
of records (so the kill lands during the baseline, calibration, a trial's evaluation or the best
model's save), after a further random delay of up to 0.3 s. Each seed kills twice (the second
time during the first resume), then resumes to the end. The finished history (configs, states,
metrics, verdicts, in evaluation order) and ``best_config.json`` must equal an uninterrupted
run's, no config may have been evaluated twice, and every interrupted trial must have run again.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tiny_project import CONFIG, write_project

pytest.importorskip("torch")

SEEDS = (1, 2, 3)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
CONFIG_6 = CONFIG.replace("max_trials: 8", "max_trials: 6")


def _command(config: Path, workspace: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "tunekit.cli", "tune", str(config), "--workspace",
            str(workspace), "-q", *(["--resume"] if resume else [])]


def _finish(config: Path, workspace: Path, resume: bool) -> None:
    done = subprocess.run(_command(config, workspace, resume), env=ENV, cwd=config.parent,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 3), done.stderr


def _kill_after(config: Path, workspace: Path, resume: bool, records: int,
                delay: float) -> int:
    """Run until the journal holds ``records`` lines (+ ``delay`` s), then SIGKILL; returns the
    lines the journal held at the kill (the process may have finished first)."""
    journal = workspace / "history.log"
    process = subprocess.Popen(_command(config, workspace, resume), env=ENV, cwd=config.parent,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None and _lines(journal) < records:
            time.sleep(0.005)
        time.sleep(delay)
        process.kill()
    finally:
        process.wait(timeout=60)
    return _lines(journal)


def _lines(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _history(workspace: Path) -> tuple[list[tuple[Any, ...]], int]:
    """Finished trials in evaluation order, and the number of interrupted ones."""
    from tunekit.store import INTERRUPTED, Store

    store = Store(str(workspace / "history.log"), "tunekit", "maximize")
    rows = [(t.config.to_json(), t.state.value, t.metric, t.accepted, t.error)
            for t in store.load().trials]
    interrupted = sum(bool(t.user_attrs.get(INTERRUPTED))
                      for t in store.study.get_trials(deepcopy=False))
    return rows, interrupted


def _best(workspace: Path) -> dict[str, Any]:
    recipe = json.loads((workspace / "best_config.json").read_text())
    return {key: recipe[key] for key in ("ops", "trial", "metric", "baseline", "met")}


@pytest.mark.slow
def test_killed_and_resumed_runs_equal_an_uninterrupted_run(tmp_path: Path) -> None:
    config = write_project(tmp_path / "project", CONFIG_6)
    reference = tmp_path / "reference"
    _finish(config, reference, resume=False)
    expected, _ = _history(reference)
    total = _lines(reference / "history.log")
    assert len(expected) == 6

    for seed in SEEDS:
        rng = random.Random(seed)
        workspace = tmp_path / f"killed-{seed}"
        first, second = sorted(rng.sample(range(1, total), 2))
        at = [_kill_after(config, workspace, False, first, rng.uniform(0, 0.3))]
        at.append(_kill_after(config, workspace, True, second, rng.uniform(0, 0.3)))
        _finish(config, workspace, resume=True)

        history, interrupted = _history(workspace)
        where = f"seed {seed}, killed at journal lines {at}"
        assert history == expected, where
        assert len({row[0] for row in history}) == len(history), f"{where}: a config ran twice"
        assert interrupted <= 2, where
        assert _best(workspace) == _best(reference), where
        assert not list(workspace.glob("*.tmp")), f"{where}: a partial file was left"
