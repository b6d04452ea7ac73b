"""One speed figure everywhere: speedup = FP32 time / model time, with the batch size, both
times in ms and the spread of interleaved rounds, in the console, report.md, result.json and
``tunekit benchmark`` (which times the tuning's batch and accepts ``tunekit optimize --out``
files); and worker evaluation counts that add up with the summary's."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from tiny_project import CONFIG, MODEL, write_project

from tunekit import cli
from tunekit.speed import Speed, from_details

torch = pytest.importorskip("torch")

#: the tiny project, accepting default int8 (a loose goal) and timing it beside FP32
TIMED = CONFIG.replace("accuracy_criterion: {absolute: 0.0}", "accuracy_criterion: "
                       "{relative: 0.9}").replace("objective: size", "objective: performance")
#: The tiny project's model with 64 channels: wide enough that int8 beats FP32 (with 4 channels
#: int8 timed slower, FP32 was kept and there was no tuned model's speed to show)
WIDE_MODEL = (MODEL.replace("Conv2d(1, 4", "Conv2d(1, 64").replace("Conv2d(4, 4", "Conv2d(64, 64")
              .replace("Linear(4 * 8 * 8", "Linear(64 * 8 * 8"))


def test_a_speed_reads_one_way_and_flags_noise() -> None:
    fast = Speed(model_ms=1.0, fp32_ms=3.5, batch_size=32, spread=0.04)
    assert fast.speedup == pytest.approx(3.5) and not fast.noisy
    assert fast.text() == "3.50× faster than FP32 (1.000 vs 3.500 ms, batch 32, ±4%)"
    assert fast.cell() == "3.50×"
    noisy = Speed(model_ms=2.0, fp32_ms=1.0, batch_size=1, spread=0.25, runtimes="TFLite vs "
                  "FP32 in TensorFlow (Keras)")
    assert noisy.text() == ("0.50× the speed of (slower than) FP32 (2.000 vs 1.000 ms, batch 1, "
                            "±25%, noisy, TFLite vs FP32 in TensorFlow (Keras))")
    assert noisy.cell() == "0.50× ±25% noisy"
    busy = Speed(model_ms=1.0, fp32_ms=2.0, spread=0.01, foreign_cpu=0.8)
    assert busy.busy and busy.cell() == "2.00× busy"
    assert "busy machine: other processes used 80% of the CPU" in busy.text()
    details = {"performance": 0.002, "performance.fp32": 0.004, "performance.batch_size": 8.0,
               "performance.spread": 0.01}
    assert from_details(details, "performance") == Speed(2.0, 4.0, 8, 0.01)
    assert from_details({"size": 10.0}, "size") is None


@pytest.fixture(scope="module")
def timed_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-trial tuning of the tiny project with the performance objective (shared)."""
    import os

    root = tmp_path_factory.mktemp("timed")
    write_project(root, TIMED, model__py=WIDE_MODEL)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        code = cli.main(["tune", str(root / "config.yaml"), "--workspace", str(root / "ws"),
                         "--set", "tuning.exit_policy.max_trials=1"])
    finally:
        os.chdir(cwd)
    assert code == cli.EXIT_MET
    assert not json.loads((root / "ws" / "result.json").read_text())["fp32_kept"]
    return root


def test_the_speedup_is_one_figure_in_console_report_and_result(
        timed_workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = timed_workspace / "ws"
    result = json.loads((ws / "result.json").read_text())
    speed = result["speed"]["performance"]
    assert speed["batch_size"] == 16 and speed["fp32_ms"] > 0 and speed["model_ms"] > 0
    assert speed["speedup"] == pytest.approx(speed["fp32_ms"] / speed["model_ms"], rel=1e-3)
    assert result["pareto_front"][0]["speed"]["performance"] == speed
    report = (ws / "report.md").read_text()
    assert "speedup vs FP32 (FP32 / model ms, batch)" in report
    assert f"{speed['speedup']:.2f}×" in report and "objective (×FP32)" not in report
    assert f"speed: {speed['speedup']:.2f}×" in report  # the summary line


def test_benchmark_times_the_tunings_batch_and_one_speedup_per_row(
        timed_workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = timed_workspace
    quick = ["--set", "benchmark.processes=1", "--set", "benchmark.rounds=2",
             "--set", "benchmark.iterations=2", "--set", "benchmark.warmup=1"]
    assert cli.main(["benchmark", str(root / "config.yaml"), "--model", str(root / "ws"),
                     *quick]) == 0
    table = capsys.readouterr().out
    data = json.loads((root / "ws" / "benchmark.json").read_text())
    assert [row["batch_size"] for row in data["results"]] == [1, 16]  # 1 and the tuning's
    header = table.splitlines()[0]
    assert header.count("speedup") == 1 and "throughput ×" not in header
    assert all("spread" in row and "throughput_ratio" not in row for row in data["results"])
    # a model file of its own, as tunekit optimize --out writes it (TorchScript)
    import model

    net = model.build()
    scripted = torch.jit.trace(net, torch.rand(1, 1, 8, 8))
    torch.jit.save(scripted, str(root / "opt.pt"))
    assert cli.main(["benchmark", str(root / "config.yaml"), "--model", str(root / "opt.pt"),
                     "--out", str(root / "opt.json"), *quick]) == 0
    rows = json.loads((root / "opt.json").read_text())["results"]
    assert [row["batch_size"] for row in rows] == [1, 16]  # the data's batch: no result.json


def test_worker_evaluations_add_up_with_the_summarys(postgres_url: str) -> None:
    """A worker that finishes configs past a batch's first accepted one did that work: the
    coordinator counts it too (as not in the history). On PostgreSQL, as in a cluster: its row
    lock makes the coordinator's cancel and a worker's finish exclusive, where SQLite (no row
    locks) let both read RUNNING and the cancel overwrite a finish the worker had counted."""
    from test_distributed import Worker, dispatcher, singles

    url = postgres_url
    coordinator, study = dispatcher(url)
    worker = Worker(url, study, "w")
    configs = singles()[1:]  # an early one is accepted: the ones after it are speculative
    answer: list = []
    queued = threading.Thread(target=lambda: answer.append(
        coordinator.run_batch(0, configs, True, known={})), daemon=True)
    queued.start()
    deadline = time.monotonic() + 30
    while not coordinator.store.study.get_trials(deepcopy=False) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    worker.start()
    queued.join(60)
    worker.stop.set()
    worker.join()
    recorded = len(answer[0])
    assert recorded < len(configs)
    assert coordinator.evaluated() == len(worker.answered) >= recorded
