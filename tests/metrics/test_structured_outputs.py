"""Detection and QA outputs reach their metrics through the PyTorch adaptor's ``predict``."""

from __future__ import annotations

import pytest

from tunekit.evaluate import Evaluator
from tunekit.metrics.coco_map import CocoMAP
from tunekit.metrics.squad import SquadF1

torch = pytest.importorskip("torch")
from tunekit.adaptors.pytorch import PyTorchAdaptor


class Detector(torch.nn.Module):
    """Returns what torchvision detection models return: one dict of tensors per image. The
    boxes are the inputs shifted by a learned offset, so the AP depends on the weights."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = torch.nn.Parameter(torch.tensor(shift))

    def forward(self, boxes: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": image + self.shift, "scores": torch.linspace(1, 0.5, len(image)),
                 "labels": torch.ones(len(image), dtype=torch.int64)} for image in boxes]


class Answerer(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> list[str]:
        return ["the answer" if value > 0 else "no idea" for value in x.tolist()]


def detection_data() -> list[tuple[torch.Tensor, list[dict[str, torch.Tensor]]]]:
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(2, 3, 2, generator=generator) * 100
    boxes = torch.cat([corners, corners + 20], dim=2)           # (images, boxes, xyxy)
    truth = [{"boxes": image, "labels": torch.ones(3, dtype=torch.int64)} for image in boxes]
    return [(boxes, truth)]


def test_detection_outputs_pass_through_to_coco_map():
    adaptor = PyTorchAdaptor()
    perfect = Evaluator(adaptor, detection_data(), CocoMAP())(Detector(0.0))
    shifted = Evaluator(adaptor, detection_data(), CocoMAP())(Detector(3.0))
    assert perfect == pytest.approx(1.0) and 0 < shifted < 1


def test_answer_strings_pass_through_to_squad():
    data = [(torch.tensor([1.0, -1.0]), ["The answer!", "a guess"])]
    assert Evaluator(PyTorchAdaptor(), data, SquadF1())(Answerer()) == pytest.approx(0.5)
