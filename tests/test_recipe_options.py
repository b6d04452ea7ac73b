"""``best_config.json`` keeps the adaptor's options, and ``tunekit.load`` makes the adaptor with
them (the ONNX Runtime side is in tests/adaptors/test_onnxrt.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tunekit
from tunekit.errors import ConfigError

torch = pytest.importorskip("torch")


def test_pytorch_recipe_keeps_options_and_load_uses_them(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3)).eval()
    x = torch.rand(32, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    result = tunekit.tune(model, [(x, y)], eval_data=[(x, y)], metric="topk",
                          accuracy_criterion={"absolute": 0.5}, max_trials=2, objective="size",
                          workspace=str(tmp_path / "ws"),
                          config={"model": {"options": {"backend": "eager"}}})
    recipe_path = tmp_path / "ws" / "best_config.json"
    recipe = json.loads(recipe_path.read_text())
    assert recipe["options"] == {"backend": "eager"}
    loaded = tunekit.load(tmp_path / "ws", model)
    with torch.no_grad():
        assert torch.equal(loaded(x), result.best_model(x))
    recipe["options"] = {"no_such_option": 1}  # proves load passes the kept options
    recipe_path.write_text(json.dumps(recipe))
    with pytest.raises(ConfigError, match="options"):
        tunekit.load(tmp_path / "ws", model)
