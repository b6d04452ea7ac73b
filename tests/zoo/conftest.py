"""Fixtures of the ONNX model zoo (tests/zoo/test_zoo_onnx*.py): one folder of exported files
per test module, and the CNN exported by each of torch's exporters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx_zoo")


@pytest.fixture(scope="module", params=("torchscript", "dynamo"))
def cnn(request: pytest.FixtureRequest, folder: Path) -> tuple[Path, Any]:
    """The joins CNN (depthwise, Add, Concat, ConvTranspose) as a file and a ModelProto."""
    import torch

    from tests.zoo import onnx_zoo as zoo

    torch.manual_seed(zoo.SEED)
    path = folder / f"cnn-{request.param}.onnx"
    return path, zoo.export(zoo.JoinsCNN(), zoo.images(1, 8), path, ["x"], ["logits"],
                            request.param)
