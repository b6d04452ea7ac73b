"""The example plugin package adds a metric, an objective and a strategy that tune by name."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_installed_metric_objective_and_strategy_tune_by_name(tmp_path: Path, pip_installed) -> None:
    pytest.importorskip("torch")
    env = pip_installed(ROOT / "examples" / "plugin_package")
    tunekit = [sys.executable, "-m", "tunekit.cli"]
    listed = subprocess.run([*tunekit, "plugins"], env=env, capture_output=True, text=True,
                            check=True).stdout
    for name in ("balanced_accuracy", "size_mib", "reverse_fallback"):
        assert re.search(rf"^  {name} +tunekit_plugin_example\.\S+  \[tunekit-plugin-example 0\.1\.0\]$",
                         listed, re.MULTILINE), listed
    run = subprocess.run([*tunekit, "tune", str(ROOT / "examples/digits_pytorch/config.yaml"),
                          "--workspace", str(tmp_path / "ws"),
                          "--set", "evaluation.metric={name: balanced_accuracy}",
                          "--set", "tuning.objective=size_mib",
                          "--set", "tuning.strategy={name: reverse_fallback}"],
                         env=env, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr
    assert "strategy 'reverse_fallback'" in run.stderr and "goal met" in run.stdout
    result = json.loads((tmp_path / "ws" / "result.json").read_text())
    assert 0 < result["best_objectives"]["size_mib"] < result["baseline_objectives"]["size_mib"]
