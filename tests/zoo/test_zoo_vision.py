"""ResNet-18 and MobileNetV3-small (random init, settled BatchNorm) tuned through tunekit.tune,
judged by the cosine similarity of their outputs to the FP32 model's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tunekit
from tests.zoo.zoo_models import (MobileNetV3Small, ResNet18, assert_tuned, cosine_to, images,
                                  settled, tune)

SIZE = 32  # small inputs keep a trial to seconds on two cores


@pytest.mark.slow
def test_resnet18_tunes_to_int8_within_the_goal_and_reloads(tmp_path: Path) -> None:
    model = settled(ResNet18(), (4, 3, SIZE, SIZE))
    evaluation = images(2, SIZE, batch=4)
    result = tune(model, images(2, SIZE, batch=4), tmp_path,
                  eval_func=cosine_to(model, evaluation))
    assert_tuned(result, floor=0.98)
    assert result.met
    again = tunekit.load(tmp_path, model)
    with torch.no_grad():
        assert torch.allclose(again(evaluation[0]), result.best_model(evaluation[0]))


@pytest.mark.slow
def test_mobilenet_v3_small_tunes_within_the_goal(tmp_path: Path) -> None:
    """Inverted residuals, depthwise convs, squeeze-excite (a mul by a gate) and hardswish."""
    model = settled(MobileNetV3Small(), (4, 3, SIZE, SIZE))
    result = tune(model, images(2, SIZE, batch=4), tmp_path,
                  eval_func=cosine_to(model, images(2, SIZE, batch=4)),
                  accuracy_criterion={"relative": 0.05})
    assert result.baseline["metric"] == pytest.approx(1.0)  # FP32 against itself
    assert_tuned(result, floor=0.95)
