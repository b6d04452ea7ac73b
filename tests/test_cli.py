"""The CLI as a user meets it: real (tiny) torch models in a temp folder, real YAML files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tunekit import cli

torch = pytest.importorskip("torch")

MODEL = """
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.flatten = torch.nn.Flatten()
        self.fc = torch.nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(self.flatten(self.relu(self.conv1(x))))

def build():
    torch.manual_seed(0)
    return Net().eval()

def broken():
    raise RuntimeError("weights file is corrupt")
"""

DATA = """
import torch

def _batches(seed, n):
    g = torch.Generator().manual_seed(seed)
    from model import build
    net = build()
    out = []
    for _ in range(n):
        x = torch.rand(8, 1, 8, 8, generator=g)
        with torch.no_grad():
            y = net(x).argmax(1)     # labels the FP32 model gets right: baseline top-1 = 1.0
        out.append((x, y))
    return out

def calib():
    return _batches(1, 2)

def evaluate_loader():
    return _batches(2, 3)

def eval_raises(model):
    raise ValueError("label file missing")

def eval_only_fp32_passes(model):
    from model import Net
    return 1.0 if isinstance(model, Net) else 0.5

def eval_returns_text(model):
    return "good"
"""

CONFIG = """
model: {framework: pytorch, factory: model:build}
quantization:
  calibration: {data: data:calib}
evaluation:
  data: data:evaluate_loader
  metric: {name: topk}
tuning:
  accuracy_criterion: {relative: 0.5}
  objective: performance
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "model.py").write_text(textwrap.dedent(MODEL))
    (tmp_path / "data.py").write_text(textwrap.dedent(DATA))
    (tmp_path / "config.yaml").write_text(textwrap.dedent(CONFIG))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(project: Path, *args: str) -> int:
    return cli.main(["tune", str(project / "config.yaml"), "--workspace",
                     str(project / "ws"), *args])


def test_tune_meets_goal_and_writes_workspace(project: Path, capsys) -> None:
    # size, not latency: int8 may be slower than FP32 on a model this small (and on a busy
    # machine), and then FP32 is kept and no tuned model written (test_result_selection.py)
    assert run(project, "--set", "tuning.objective=size") == cli.EXIT_MET
    out = capsys.readouterr()
    assert "goal met" in out.out
    assert "trial   0" in out.err and "target ≥" in out.err
    result = json.loads((project / "ws" / "result.json").read_text())
    assert result["met"] and result["evaluations"] >= 2
    recipe = json.loads((project / "ws" / "best_config.json").read_text())
    assert {op["name"] for op in recipe["ops"]} == {"conv1", "fc"}
    assert (project / "ws" / "best_model.pt").exists()
    assert (project / "ws" / "history.log").exists()


def test_goal_not_met_exits_3_and_keeps_best(project: Path, capsys) -> None:
    code = run(project, "--set", "evaluation={eval_func: data:eval_only_fp32_passes}",
               "--set", "tuning.accuracy_criterion={absolute: 0.0}",
               "--set", "tuning.exit_policy.max_trials=3")
    out = capsys.readouterr().out
    assert code == cli.EXIT_NOT_MET and "goal NOT met" in out
    result = json.loads((project / "ws" / "result.json").read_text())
    assert not result["met"] and result["trials"] == 3 and result["status"] == "max_trials"
    assert (project / "ws" / "best_config.json").exists()
    assert (project / "ws" / "best_model.pt").exists()


def test_wrong_strategy_name(project: Path, capsys) -> None:
    assert run(project, "--set", "tuning.strategy=bayes") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "tuning.strategy: unknown strategies plugin 'bayes'; installed:" in err
    assert "Traceback" not in err


def test_yaml_typo(project: Path, capsys) -> None:
    text = (project / "config.yaml").read_text().replace("accuracy_criterion", "accuracy_critrion")
    (project / "config.yaml").write_text(text)
    assert run(project) == cli.EXIT_USAGE
    assert "tuning.accuracy_critrion: unknown key (did you mean 'accuracy_criterion'?)" in \
        capsys.readouterr().err


def test_missing_model_file(project: Path, capsys) -> None:
    code = run(project, "--set", "model={framework: pytorch, path: nothere.pt2}")
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "nothere.pt2" in err and "does not exist" in err


def test_model_factory_that_raises(project: Path, capsys) -> None:
    assert run(project, "--set", "model.factory=model:broken") == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "model.factory model:broken raised RuntimeError: weights file is corrupt" in err
    assert "model.py" in err


def test_eval_func_that_raises(project: Path, capsys) -> None:
    code = run(project, "--set", "evaluation={eval_func: data:eval_raises}")
    assert code == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "baseline" in err and "eval_raises raised ValueError: label file missing" in err
    assert "Traceback" not in err


def test_eval_func_returning_non_number(project: Path, capsys) -> None:
    assert run(project, "--set", "evaluation={eval_func: data:eval_returns_text}") == cli.EXIT_ERROR
    assert "returned 'good' (a str); it must return a number" in capsys.readouterr().err


def test_missing_module_reference(project: Path, capsys) -> None:
    assert run(project, "--set", "evaluation.data=dataz:evaluate_loader") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "evaluation.data: cannot import module 'dataz'" in err


def test_missing_attribute_reference(project: Path, capsys) -> None:
    assert run(project, "--set", "quantization.calibration.data=data:calibrate") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "quantization.calibration.data: 'data' has no attribute 'calibrate'; it has:" in err
    assert "calib" in err


def test_resume_evaluates_nothing_twice(project: Path, capsys) -> None:
    # size: the resumed run times the kept candidate again beside FP32, and on latency noise
    # around this tiny model's ~0.85× could flip "FP32 kept" between the two runs
    size = ("--set", "tuning.objective=size")
    assert run(project, *size) == cli.EXIT_MET
    first = json.loads((project / "ws" / "result.json").read_text())
    assert run(project, "--resume", *size) == cli.EXIT_MET
    second = json.loads((project / "ws" / "result.json").read_text())
    assert second["evaluations"] == 0 and second["trials"] == first["trials"]
    assert second["best_metric"] == first["best_metric"]


def test_new_run_archives_previous(project: Path) -> None:
    assert run(project) == cli.EXIT_MET
    assert run(project) == cli.EXIT_MET
    assert len(list((project / "ws" / "previous").iterdir())) == 1


def test_plugins_command(capsys) -> None:
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "tunekit.strategies:" in out and "basic" in out


def test_report_command(project: Path, capsys) -> None:
    assert run(project) == cli.EXIT_MET
    capsys.readouterr()
    assert cli.main(["report", str(project / "ws")]) == 0
    assert "| trial | stage | config |" in capsys.readouterr().out


def test_version_is_setup_cfgs(capsys) -> None:
    """``tunekit/version.py`` holds the version by hand; it must say what setup.cfg says."""
    import configparser

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tunekit {setup['metadata']['version']}"
