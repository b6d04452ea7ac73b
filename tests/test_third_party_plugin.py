"""A strategy shipped as its own package is installed with pip and used by name, unchanged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_installed_strategy_is_listed_and_tunes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target),
                    str(ROOT / "examples" / "greedy_strategy")], check=True)
    env = {**os.environ, "PYTHONPATH": str(target), "TUNEKIT_CACHE_DIR": str(tmp_path / "cache")}
    tunekit = [sys.executable, "-m", "tunekit.cli"]
    listed = subprocess.run([*tunekit, "plugins"], env=env, capture_output=True, text=True,
                            check=True).stdout
    assert re.search(r"^  greedy +tunekit_greedy\.strategy:GreedyFallback  \[tunekit-greedy 0\.1\.0\]",
                     listed, re.M)
    run = subprocess.run([*tunekit, "tune", str(ROOT / "examples/digits_pytorch/fallback.yaml"),
                          "--workspace", str(tmp_path / "ws"),
                          "--set", "tuning.strategy={name: greedy, fallback: bf16}"],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "strategy 'greedy'" in run.stderr and "goal met" in run.stdout
