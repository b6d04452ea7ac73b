"""Same config and seed → same trial sequence and result, on a real torch model.

The size objective is used because it is itself deterministic; latency (``performance``) and the
``time.*`` figures recorded per trial are measurements and vary between runs, so with them only
configs, metrics and verdicts repeat (see docs/reliability.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny_project import write_project

from tunekit import cli

pytest.importorskip("torch")


def _tune(root: Path, workspace: str, *sets: str) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    args = ["tune", str(root / "config.yaml"), "--workspace", str(root / workspace), "-q"]
    for item in sets:
        args += ["--set", item]
    assert cli.main(args) in (cli.EXIT_MET, cli.EXIT_NOT_MET)
    from tunekit.store import Store

    trials = Store(str(root / workspace / "history.log"), "tunekit", "maximize").load().trials
    rows = [(t.config.to_json(), t.state.value, t.metric, t.accepted, t.objective)
            for t in trials]
    recipe = json.loads((root / workspace / "best_config.json").read_text())
    best = {key: recipe[key] for key in ("ops", "trial", "metric")}
    return rows, {**best, "size": recipe["objectives"]["size"]}  # not the time.* figures


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("strategy", ["basic", "random"])
def test_same_seed_same_trials_and_result(project: Path, strategy: str) -> None:
    sets = (f"tuning.strategy={strategy}", "tuning.exit_policy={timeout: 3600, max_trials: 5}")
    first = _tune(project, "a", *sets)
    second = _tune(project, "b", *sets)
    assert len(first[0]) == 5
    assert first == second


def test_the_seed_drives_the_random_strategy(project: Path) -> None:
    sets = ("tuning.strategy=random", "tuning.exit_policy={timeout: 3600, max_trials: 4}")
    seeded_7 = _tune(project, "a", *sets, "tuning.random_seed=7")[0]
    seeded_8 = _tune(project, "b", *sets, "tuning.random_seed=8")[0]
    assert [row[0] for row in seeded_7] != [row[0] for row in seeded_8]
