"""``tunekit benchmark``: core sets, the report, its config section, and a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunekit import config
from tunekit.benchmark import Report
from tunekit.benchmark.instances import core_sets
from tunekit.benchmark.measure import Figures
from tunekit.config import BenchmarkSpec
from tunekit.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_pytorch"


def test_core_sets_are_disjoint_and_must_fit() -> None:
    assert core_sets(BenchmarkSpec(instances=2), [3, 0, 1, 2]) == [[0, 1], [2, 3]]
    assert core_sets(BenchmarkSpec(instances=2, cores_per_instance=1), [0, 1, 2]) == [[0], [1]]
    with pytest.raises(ConfigError, match="benchmark.instances"):
        core_sets(BenchmarkSpec(instances=3), [0, 1])


def test_report_puts_models_side_by_side_with_ratios(tmp_path: Path) -> None:
    def figures(model: str, median: float) -> Figures:
        return Figures(model, 8, median, median * 2, 8 / median, 1, 10)

    report = Report(BenchmarkSpec(batch_sizes=(8,), instances=2), tmp_path,
                    [[[figures("fp32", 0.004), figures("tuned", 0.001)],
                      [figures("fp32", 0.006), figures("tuned", 0.003)]]], [[0], [1]])
    row = report.rows()[0]
    assert row["fp32"]["median_ms"] == pytest.approx(5.0)
    assert row["tuned"]["median_ms"] == pytest.approx(2.0)
    assert row["speedup"] == pytest.approx(2.5)
    assert row["fp32"]["throughput"] == pytest.approx(8 / 0.004 + 8 / 0.006)  # instances add up
    assert "2.50×" in report.table() and "cores {0}, {1}" in report.table()
    report.write(tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["batch_size"] == 8


def test_report_over_several_runs_takes_medians_and_shows_the_range(tmp_path: Path) -> None:
    def run(fp32: float, tuned: float) -> list[list[Figures]]:
        return [[Figures("fp32", 4, fp32, fp32, 4 / fp32, 2, 10),
                 Figures("tuned", 4, tuned, tuned, 4 / tuned, 2, 10)]]

    report = Report(BenchmarkSpec(batch_sizes=(4,), processes=3), tmp_path,
                    [run(0.004, 0.002), run(0.006, 0.002), run(0.003, 0.002)], [[0, 1]])
    row = report.rows()[0]
    assert row["fp32"]["median_ms"] == pytest.approx(4.0)
    assert row["speedup"] == pytest.approx(2.0)  # the median of the runs' ratios 2, 3, 1.5
    assert row["speedup_range"] == pytest.approx([1.5, 3.0])
    assert "2.00× (1.50–3.00)" in report.table() and "3 runs in fresh processes" in report.table()
    assert len(report.to_dict()["per_run"]) == 3


def test_benchmark_section_is_validated() -> None:
    raw = {"model": {"framework": "pytorch", "factory": "m:f"}, "evaluation": {}}
    spec = config.parse({**raw, "benchmark": {"batch_sizes": [4], "instances": 2}})
    assert spec.benchmark.batch_sizes == (4,) and spec.benchmark.instances == 2
    with pytest.raises(ConfigError, match="benchmark.batch_sizes"):
        config.parse({**raw, "benchmark": {"batch_sizes": [0]}})
    with pytest.raises(ConfigError, match="benchmark.warmpu"):
        config.parse({**raw, "benchmark": {"warmpu": 1}})


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_benchmark_cli_on_the_example_with_two_instances(tmp_path: Path,
                                                        example_env: dict[str, str]) -> None:
    pytest.importorskip("torch")
    env = example_env
    workspace = tmp_path / "ws"
    cli = [sys.executable, "-m", "tunekit.cli"]
    tuned = subprocess.run([*cli, "tune", str(EXAMPLE / "config.yaml"), "--workspace",
                            str(workspace), "-q"], env=env, capture_output=True, text=True)
    assert tuned.returncode == 0, tuned.stderr
    bench = subprocess.run([*cli, "benchmark", str(EXAMPLE / "config.yaml"), "--model",
                            str(workspace), "--set", "benchmark.instances=2", "--set",
                            "benchmark.rounds=1", "--set", "benchmark.iterations=3", "--set",
                            "benchmark.processes=2"],
                           env=env, capture_output=True, text=True)
    assert bench.returncode == 0, bench.stderr
    assert "speedup" in bench.stdout
    result = json.loads((workspace / "benchmark.json").read_text())
    cores = result["cores"]
    assert len(cores) == 2 and not set(cores[0]) & set(cores[1])
    assert [r["batch_size"] for r in result["results"]] == [1, 64]  # 1 and the tuning's batch
    assert result["processes"] == len(result["per_run"]) == 2
    for instances in result["per_run"]:
        for figures in instances:
            assert {(f["model"], f["threads"]) for f in figures} == {("fp32", len(cores[0])),
                                                                      ("tuned", len(cores[0]))}


def test_quiet_rounds_keeps_quiet_ones_or_the_two_quietest() -> None:
    from tunekit.benchmark.load import quiet_rounds

    assert quiet_rounds([0.0, 0.5, 0.01, 0.02]) == [0, 2, 3]
    assert quiet_rounds([0.4, 0.1, 0.5, 0.2]) == [1, 3]  # too few quiet: the two calmest
    assert quiet_rounds([0.4, None, 0.9]) == [0, 1]  # unknown load counts as quiet
    assert quiet_rounds([0.9]) == [0]


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat")
def test_cpu_share_sees_another_process_spinning() -> None:
    from tunekit.benchmark.load import CpuShare

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with CpuShare().measure() as share:
            end = time.perf_counter() + 0.6
            while time.perf_counter() < end:
                pass
    finally:
        spinner.kill()
        spinner.wait()
    # the spinner takes a whole core of os.cpu_count(); allow for the scheduler's slices
    assert share.foreign is not None and share.foreign > 0.5 / (os.cpu_count() or 1)


def test_a_wrong_model_path_is_one_clear_line_before_any_worker_starts(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tunekit.cli", "benchmark",
                           str(EXAMPLE / "config.yaml"), "--model", str(tmp_path / "nowhere")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "--model" in done.stderr and "not a tuning workspace" in done.stderr
    assert "Traceback" not in done.stderr
