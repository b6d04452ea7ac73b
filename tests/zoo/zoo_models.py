"""The PyTorch model zoo's models, data and metrics (shared by the tests in this folder).

Architectures are defined here rather than imported from torchvision (whose registry wheel links
CUDA libraries and does not import beside the local CPU torch). Weights are random, so the
metrics compare each candidate with the FP32 model itself: top-1 agreement (the ``topk`` metric
over labels that are the FP32 model's own predictions) or the mean cosine similarity of the
outputs (an ``eval_func``). BatchNorm statistics are settled on random inputs first so that the
activations look like a trained network's rather than random init's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import tunekit
from tests.adaptors.glue_models import BasicBlock  # one ResNet block for every test model
from tunekit.result import TuneResult

SEED = 0


# --------------------------------------------------------------------------- architectures

class ResNet18(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def _divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = _divisible(channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int,
             act: type[nn.Module] | None) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups,
                                         bias=False), nn.BatchNorm2d(cout)]
    return layers + ([act()] if act is not None else [])


class InvertedResidual(nn.Module):
    """Expand (1x1) → depthwise (kxk) → squeeze-excite → project (1x1), residual if shapes keep."""

    def __init__(self, cin: int, kernel: int, expanded: int, cout: int, se: bool,
                 act: type[nn.Module], stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != cin:
            layers += _conv_bn(cin, expanded, 1, 1, 1, act)
        layers += _conv_bn(expanded, expanded, kernel, stride, expanded, act)
        if se:
            layers.append(SqueezeExcite(expanded))
        layers += _conv_bn(expanded, cout, 1, 1, 1, None)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


#: MobileNetV3-small: (in, kernel, expanded, out, squeeze-excite, activation, stride)
MOBILENET_V3_SMALL = (
    (16, 3, 16, 16, True, nn.ReLU, 2), (16, 3, 72, 24, False, nn.ReLU, 2),
    (24, 3, 88, 24, False, nn.ReLU, 1), (24, 5, 96, 40, True, nn.Hardswish, 2),
    (40, 5, 240, 40, True, nn.Hardswish, 1), (40, 5, 240, 40, True, nn.Hardswish, 1),
    (40, 5, 120, 48, True, nn.Hardswish, 1), (48, 5, 144, 48, True, nn.Hardswish, 1),
    (48, 5, 288, 96, True, nn.Hardswish, 2), (96, 5, 576, 96, True, nn.Hardswish, 1),
    (96, 5, 576, 96, True, nn.Hardswish, 1))


class MobileNetV3Small(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(*_conv_bn(3, 16, 3, 2, 1, nn.Hardswish),
                                      *(InvertedResidual(*row) for row in MOBILENET_V3_SMALL),
                                      *_conv_bn(96, 576, 1, 1, 1, nn.Hardswish))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(1024, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class LSTMClassifier(nn.Module):
    """Token ids → embedding → LSTM → the last step's state → classes."""

    def __init__(self, vocab: int = 100, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.lstm = nn.LSTM(32, 64, batch_first=True)
        self.head = nn.Linear(64, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(ids))
        return self.head(out[:, -1])


class TwoInputs(nn.Module):
    """Two required tensor inputs (e.g. an image's features and metadata), merged by concat."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Linear(16, 32)
        self.right = nn.Linear(8, 32)
        self.head = nn.Linear(64, 5)

    def forward(self, features: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        merged = torch.cat([torch.relu(self.left(features)), torch.relu(self.right(extra))], 1)
        return self.head(merged)


class DictOutput(nn.Module):
    """Returns ``{"features": ..., "logits": ...}`` as many library models do."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.body(x)
        return {"features": features, "logits": self.head(features)}


class TupleOutput(DictOutput):
    """Returns ``(logits, features)``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        out = super().forward(x)
        return out["logits"], out["features"]


def tiny_bert(family: str = "bert", classes: int = 3) -> nn.Module:
    """A random-init HuggingFace encoder for sequence classification, tiny enough for a test."""
    import transformers

    sizes = dict(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=64, num_labels=classes)
    kinds = {"bert": ("BertConfig", "BertForSequenceClassification"),
             "roberta": ("RobertaConfig", "RobertaForSequenceClassification"),
             "distilbert": ("DistilBertConfig", "DistilBertForSequenceClassification")}
    config_name, model_name = kinds[family]
    if family == "distilbert":
        sizes = dict(vocab_size=200, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                     max_position_embeddings=64, num_labels=classes)
    torch.manual_seed(SEED)
    config = getattr(transformers, config_name)(**sizes)
    return getattr(transformers, model_name)(config).eval()


def settled(model: nn.Module, shape: Sequence[int], batches: int = 2) -> nn.Module:
    """``model`` with BatchNorm running statistics taken from random inputs, in eval mode."""
    torch.manual_seed(SEED)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(*shape))
    return model.eval()


# --------------------------------------------------------------------------- data and metrics

def predictions(model: nn.Module, inputs: Any) -> torch.Tensor:
    """The FP32 model's top-1 class per sample (the labels of "agreement with FP32")."""
    with torch.no_grad():
        out = model(**inputs) if isinstance(inputs, dict) else \
            model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    logits = out["logits"] if isinstance(out, dict) or hasattr(out, "logits") else \
        out[0] if isinstance(out, tuple) else out
    return logits.argmax(-1)


def labelled(model: nn.Module, inputs: Sequence[Any]) -> list[tuple[Any, torch.Tensor]]:
    """``(inputs, FP32 top-1)`` batches: with the ``topk`` metric, top-1 agreement with FP32."""
    return [(x, predictions(model, x)) for x in inputs]


def cosine_to(reference: nn.Module, inputs: Sequence[torch.Tensor]) -> Callable[[Any], float]:
    """An eval_func: the mean cosine similarity of a model's outputs to ``reference``'s."""
    with torch.no_grad():
        expected = [reference(x) for x in inputs]

    def cosine(model: Any) -> float:
        with torch.no_grad():
            scores = [nn.functional.cosine_similarity(model(x).float(), e, dim=-1).mean()
                      for x, e in zip(inputs, expected)]
        return float(torch.stack(scores).mean())

    return cosine


def images(count: int, size: int, batch: int = 8) -> list[torch.Tensor]:
    torch.manual_seed(SEED + 1)
    return [torch.randn(batch, 3, size, size) for _ in range(count)]


def tokens(count: int, batch: int = 8, length: int = 16,
           vocab: int = 200) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(input_ids, attention_mask)`` batches, the last quarter of each row padding."""
    torch.manual_seed(SEED + 2)
    out = []
    for _ in range(count):
        ids = torch.randint(1, vocab, (batch, length))
        mask = torch.ones_like(ids)
        mask[:, length * 3 // 4:] = 0
        out.append((ids, mask))
    return out


# --------------------------------------------------------------------------- tuning

def tune(model: nn.Module, calib: Any, workspace: Path, **kw: Any) -> TuneResult:
    """``tunekit.tune`` with the zoo's budget: few trials, a 2% relative goal, the size
    objective (timing is other tests' business and costs seconds per trial), quiet."""
    kw.setdefault("max_trials", 3)
    kw.setdefault("objective", "size")
    kw.setdefault("accuracy_criterion", {"relative": 0.02})
    return tunekit.tune(model, calib, workspace=str(workspace), quiet=True, **kw)


def assert_tuned(result: TuneResult, floor: float) -> None:
    """A real low-precision model came out: int8 ops in it, its metric at least ``floor``,
    no failed trial, and the saved model and report on disk."""
    assert result.best_trial is not None and not result.best_trial.failed, result.summary()
    assert result.best_config.counts().get("int8", 0) > 0, result.best_config
    assert result.best_trial.metric >= floor, result.summary()
    assert not [t.error for t in result.trials if t.failed]
    assert (result.workspace / "report.md").exists()
    assert list(result.workspace.glob("best_model*")), list(result.workspace.iterdir())
