"""A user's strategy of under 30 lines (examples/greedy_strategy) passes the shipped contract and
runs in ``tunekit compare`` once pip-installed, with no change to tunekit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunekit.strategy import Strategy
from tunekit.testing.strategy_contract import StrategyContract

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "greedy_strategy"


def test_the_example_is_short() -> None:
    assert len((PACKAGE / "tunekit_greedy" / "strategy.py").read_text().splitlines()) < 30


class TestGreedyContract(StrategyContract):
    @pytest.fixture(params=[{}, {"fallback": "bf16", "max_fallbacks": 2}])
    def strategy(self, request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> Strategy:
        monkeypatch.syspath_prepend(str(PACKAGE))
        from tunekit_greedy.strategy import GreedyFallback

        return GreedyFallback(**request.param)


@pytest.mark.slow
def test_pip_installed_strategy_runs_in_compare(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(PACKAGE)], check=True)
    env = {**os.environ, "PYTHONPATH": str(target), "TUNEKIT_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "tunekit.cli", "compare",
                          str(ROOT / "examples/digits_pytorch/fallback.yaml"),
                          "--strategies", "greedy,mse", "--out", str(tmp_path / "out"), "-q"],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "out" / "compare.json").read_text())["summary"]
    assert [row["strategy"] for row in summary] == ["greedy", "mse"]
    assert all(row["met"] == 1 for row in summary)
