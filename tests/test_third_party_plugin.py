"""A strategy shipped as its own package is installed with pip and used by name, unchanged."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_installed_strategy_is_listed_and_tunes(tmp_path: Path, pip_installed) -> None:
    pytest.importorskip("torch")
    env = pip_installed(ROOT / "examples" / "greedy_strategy")
    tunekit = [sys.executable, "-m", "tunekit.cli"]
    listed = subprocess.run([*tunekit, "plugins"], env=env, capture_output=True, text=True,
                            check=True).stdout
    assert re.search(r"^  greedy +tunekit_greedy\.strategy:GreedyFallback  \[tunekit-greedy 0\.1\.0\]",
                     listed, re.MULTILINE)
    run = subprocess.run([*tunekit, "tune", str(ROOT / "examples/digits_pytorch/fallback.yaml"),
                          "--workspace", str(tmp_path / "ws"),
                          "--set", "tuning.strategy={name: greedy, fallback: bf16}"],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "strategy 'greedy'" in run.stderr and "goal met" in run.stdout
