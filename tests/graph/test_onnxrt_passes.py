"""ONNX Runtime's optimization levels as ``onnxrt.*`` passes, through the same plugin dispatch
as every framework (``Adaptor.optimize_graph``), from Python and from ``tunekit optimize``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunekit
from tunekit.cli import main
from tunekit.errors import ConfigError
from tunekit.graph import registry

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def onnx_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Conv-BN-ReLU ×2 and a Linear head, exported without constant folding (BN kept)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 4)).eval()
    path = tmp_path_factory.mktemp("onnx") / "cnn.onnx"
    torch.onnx.export(model, (torch.randn(2, 1, 8, 8),), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}}, do_constant_folding=False, dynamo=False)
    return path


def test_levels_are_passes_of_the_onnxrt_adaptor() -> None:
    assert "onnxrt" in registry.frameworks()
    assert [p.name for p in registry.available("onnxrt")] == ["basic", "extended", "all"]


def test_optimize_graph_folds_nodes_and_keeps_outputs(onnx_cnn: Path) -> None:
    proto = onnx.load(str(onnx_cnn))
    result = tunekit.optimize_graph(proto, framework="onnxrt")
    reports = {r.name: r for r in result.reports}
    assert reports["basic"].nodes_after < reports["basic"].nodes_before  # BatchNorm folded
    assert result.reports[-1].nodes_after < len(proto.graph.node)
    x = np.random.RandomState(0).rand(4, 1, 8, 8).astype(np.float32)
    reference = tunekit.optimize_graph(proto, framework="onnxrt", passes=[]).model(x)
    assert np.allclose(result.model(x), reference, atol=1e-4)
    with pytest.raises(ConfigError, match="FP32 graphs only"):
        tunekit.optimize_graph(proto, ("bf16", "fp32"), framework="onnxrt")


def test_cli_optimizes_an_onnx_file(onnx_cnn: Path, tmp_path: Path) -> None:
    config = tmp_path / "optimize.yaml"
    config.write_text(textwrap.dedent(f"""
        model: {{framework: onnxrt, path: {onnx_cnn}}}
        graph_optimization: {{precisions: [fp32], passes: {{all: false}}}}
    """))
    out = tmp_path / "optimized.onnx"
    assert main(["optimize", str(config), "--out", str(out), "-q"]) == 0
    saved = onnx.load(str(out))
    assert len(saved.graph.node) < len(onnx.load(str(onnx_cnn)).graph.node)


def test_a_framework_without_passes_is_refused(tmp_path: Path, capsys: Any) -> None:
    config = tmp_path / "optimize.yaml"
    config.write_text("model: {framework: no_such_adaptor, path: m.bin}\n")
    assert main(["optimize", str(config)]) == 2
    assert "model.framework" in capsys.readouterr().err
