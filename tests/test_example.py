"""The bundled example end to end, as a new user runs it from the README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import tunekit
from tunekit import cli
from tunekit.metrics.topk import TopK

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_pytorch"
#: Evaluations Intel Neural Compressor 2.6's basic strategy needs on the fallback case
#: (baseline included), measured here: ../shared/peers/README.md.
INC_BASIC_EVALUATIONS = 24


def accuracy(model: object) -> float:
    from tunekit.references import resolve

    loader = resolve("data:eval_loader", EXAMPLE, "test")()
    metric = TopK()
    with torch.inference_mode():
        for x, y in loader:
            metric.update(model(x).float().numpy(), y.numpy())
    return metric.compute()


@pytest.mark.slow
def test_example_config_meets_goal_and_reloads(tmp_path: Path, capsys) -> None:
    workspace = tmp_path / "ws"
    code = cli.main(["tune", str(EXAMPLE / "config.yaml"), "--workspace", str(workspace)])
    assert code == cli.EXIT_MET, capsys.readouterr().err
    result = json.loads((workspace / "result.json").read_text())
    assert result["met"] and result["precisions"] == {"int8": 5}
    reloaded = tunekit.load(workspace, trust=True)  # the FP32 model from the recorded factory
    assert accuracy(reloaded) == pytest.approx(result["best_metric"], abs=0)


@pytest.mark.slow
def test_fallback_config_finds_conv1_in_fewer_evaluations_than_inc(tmp_path: Path, capsys) -> None:
    workspace = tmp_path / "ws"
    code = cli.main(["tune", str(EXAMPLE / "fallback.yaml"), "--workspace", str(workspace)])
    assert code == cli.EXIT_MET, capsys.readouterr().err
    result = json.loads((workspace / "result.json").read_text())
    assert result["met"] and result["best_metric"] >= result["baseline"]
    assert set(result["fallback_ops"]) == {"conv1"}
    assert result["evaluations"] < INC_BASIC_EVALUATIONS
    trials = (workspace / "report.md").read_text()
    assert "| 0 | int8×5 |" in trials  # default int8 was tried first and missed the goal
    reloaded = tunekit.load(workspace, trust=True)
    assert accuracy(reloaded) == pytest.approx(result["best_metric"], abs=0)
