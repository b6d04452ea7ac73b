"""``tunekit optimize CONFIG.yaml`` end to end on a small model written next to its config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tunekit.cli import main
from tunekit.config import load

MODULE = '''
import torch
from torch import nn

def load_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 3)).eval()

def loader():
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(4, 1, 8, 8, generator=g), torch.zeros(4, dtype=torch.long))]
'''


def _config(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "tiny.py").write_text(MODULE)
    path = tmp_path / "optimize.yaml"
    path.write_text("model: {framework: pytorch, factory: tiny:load_model}\n"
                    "quantization: {calibration: {data: tiny:loader}}\n" + extra)
    return path


def test_optimize_prints_the_pass_report_and_saves(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "graph_optimization: {precisions: [fp32]}\n")
    assert main(["optimize", str(config), "--out", str(tmp_path / "m.pt"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "fold_batchnorm" in out and (tmp_path / "m.pt").exists()
    assert f"wrote {tmp_path / 'm.pt'}" in out.splitlines()


def test_optimize_times_the_result_beside_the_input_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One line gives the overall speedup, both models timed on the calibration batch."""
    config = _config(tmp_path, "graph_optimization: {precisions: [fp32]}\n")
    assert main(["optimize", str(config), "-q"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "against the input model:" in x)
    assert re.search(r"\d+\.\d\d× .* FP32 \(\d+\.\d{3} vs \d+\.\d{3} ms, batch 4", line), line
    assert "not saved: give --out PATH" in out


def test_without_data_the_speed_line_says_why_it_is_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tiny.py").write_text(MODULE)
    config = tmp_path / "optimize.yaml"
    config.write_text("model: {framework: pytorch, factory: tiny:load_model}\n"
                      "graph_optimization: {precisions: [fp32]}\n")
    assert main(["optimize", str(config), "-q"]) == 0
    assert "against the input model: not timed: no example batch" in capsys.readouterr().out


def test_an_unknown_pass_is_a_usage_error_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "graph_optimization: {passes: {fold_bn: false}}\n")
    assert main(["optimize", str(config)]) == 2
    assert "graph_optimization.passes.fold_bn" in capsys.readouterr().err


def test_a_single_precision_name_counts_as_a_list_of_one(tmp_path: Path) -> None:
    """``precisions: bf16`` (no brackets) means bf16, not a silent FP32 run."""
    for name in ("fp32", "bf16"):
        config = _config(tmp_path, f"graph_optimization: {{precisions: {name}}}\n")
        assert load(config).graph_optimization["precisions"] == [name]


def test_amp_tuning_with_workers_is_refused_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Workers rebuild candidates as `tunekit tune` does, not as graph rewrites: refused."""
    config = _config(tmp_path, "graph_optimization: {precisions: [bf16, fp32]}\n"
                               "evaluation: {data: tiny:loader, metric: topk}\n"
                               "tuning: {workers: 2}\n")
    assert main(["optimize", str(config)]) == 2
    assert "tuning.workers" in capsys.readouterr().err


def test_out_in_a_new_folder_is_created(tmp_path: Path) -> None:
    config = _config(tmp_path, "graph_optimization: {precisions: [fp32]}\n")
    out = tmp_path / "new" / "deeper" / "m.pt"
    assert main(["optimize", str(config), "--out", str(out), "-q"]) == 0
    assert out.is_file()


def test_an_unwritable_out_fails_before_the_model_is_loaded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "boom.py").write_text("def load_model():\n    raise RuntimeError('loaded')\n")
    config = tmp_path / "optimize.yaml"
    config.write_text("model: {framework: pytorch, factory: boom:load_model}\n"
                      "graph_optimization: {precisions: [fp32]}\n")
    (tmp_path / "a_file").write_text("user data")
    assert main(["optimize", str(config), "--out", str(tmp_path / "a_file" / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "loaded" not in err and "Traceback" not in err
