"""The ONNX model zoo's models, exports, data and metrics (tests/zoo/test_zoo_onnx.py).

Each model is a random-init PyTorch or HuggingFace model exported here by one of torch's two
exporters, the TorchScript one (``dynamo=False``: ``/layer/Conv``-style names, opset 17) and the
torch.export one (``dynamo=True``, what ``torch.onnx.export`` does by default now: opset 18,
``node_Conv_3``-style names, constant folding by onnxscript), then tuned as ONNX as a new user
would. Nothing is downloaded. Weights are random, so metrics compare each candidate with the
FP32 ONNX model itself: top-1 agreement (labels are the FP32 model's own predictions) or the
cosine similarity of the outputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

import tunekit
from tunekit.adaptors.onnxrt import OrtModel
from tunekit.result import TuneResult

SEED = 0
VOCAB = 200
EXPORTERS = ("torchscript", "dynamo")


# --------------------------------------------------------------------------- architectures

class JoinsCNN(nn.Module):
    """Depthwise + pointwise convs, a residual Add, a Concat of two branches and a
    ConvTranspose upsampling: the joins and conv kinds a segmentation or mobile net has."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1)
        self.depthwise = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.pointwise = nn.Conv2d(16, 16, 1)
        self.branch = nn.Conv2d(16, 8, 3, 1, 1)
        self.up = nn.ConvTranspose2d(24, 8, 2, 2)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        y = torch.relu(self.pointwise(torch.relu(self.depthwise(x)))) + x
        z = torch.cat([y, torch.relu(self.branch(y))], 1)
        return self.head(torch.relu(self.up(z)).mean((2, 3)))


class TinyViT(nn.Module):
    """A ViT: 8x8 patches by a strided conv, a class token, learned positions, two pre-norm
    encoder layers (attention, GELU MLP) and a linear head on the class token."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 32, 8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, 32) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 17, 32) * 0.02)
        layer = nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, batch_first=True,
                                           activation="gelu", norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), patches], 1) + self.pos
        return self.head(self.encoder(tokens)[:, 0])


class TwoInTwoOut(nn.Module):
    """Two float inputs merged by a Concat, two outputs (features first, logits second)."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Linear(16, 32), nn.Linear(8, 32)
        self.head = nn.Linear(64, 5)

    def forward(self, features: torch.Tensor, extra: torch.Tensor) -> tuple[torch.Tensor, ...]:
        merged = torch.cat([torch.relu(self.left(features)), torch.relu(self.right(extra))], 1)
        return merged, self.head(merged)


class HFLogits(nn.Module):
    """A HuggingFace model called with ``(input_ids, attention_mask)``, returning its logits:
    the ONNX graph then has two int64 inputs and one output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class BatchedWeight(nn.Module):
    """``x @ W`` with a 3-D weight (one matrix per head), as an einsum or a grouped linear
    layer exports it."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 16, 8) * 0.3)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(torch.matmul(x, self.weight)).mean(2).flatten(1))


def hf_model(family: str) -> nn.Module:
    """A random-init transformer for sequence classification (hidden 32, 2 layers, 2 heads):
    ``bert``, ``distilbert`` or ``gpt2`` (a causal decoder: its causal mask, the Gather of each
    row's last token and the Where of padding go into the graph)."""
    import transformers

    from tests.zoo.zoo_models import tiny_bert

    if family != "gpt2":
        return HFLogits(tiny_bert(family)).eval()
    torch.manual_seed(SEED)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2,
                                      n_positions=64, num_labels=3, pad_token_id=0,
                                      bos_token_id=1, eos_token_id=1, use_cache=False)
    return HFLogits(transformers.GPT2ForSequenceClassification(config)).eval()


# --------------------------------------------------------------------------- export

def export(model: nn.Module, example: Sequence[np.ndarray], path: Path, inputs: Sequence[str],
           outputs: Sequence[str], exporter: str, **kw: Any) -> onnx.ModelProto:
    """``model`` exported to ``path`` by ``exporter`` (:data:`EXPORTERS`) with a dynamic batch
    axis on every input (TorchScript: unless ``dynamic_axes`` says otherwise), as the file a
    user would hand over; returns it loaded."""
    args = tuple(torch.from_numpy(a) for a in example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=64)
            torch.onnx.export(model.eval(), args, str(path), input_names=list(inputs),
                              output_names=list(outputs), dynamo=True, verbose=False,
                              dynamic_shapes=tuple({0: batch} for _ in inputs), **kw)
        else:
            kw.setdefault("dynamic_axes", {name: {0: "batch"} for name in inputs})
            torch.onnx.export(model.eval(), args, str(path), input_names=list(inputs),
                              output_names=list(outputs), dynamo=False, **kw)
    return onnx.load(str(path))


# --------------------------------------------------------------------------- data and metrics

def images(count: int, batch: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(SEED + seed)
    return [rng.standard_normal((batch, 3, 32, 32), dtype=np.float32) for _ in range(count)]


def tokens(count: int, batch: int, length: int = 16,
           seed: int = 2) -> list[dict[str, np.ndarray]]:
    """Tokenizer-like batches: int64 ``input_ids`` and ``attention_mask``, each row padded
    (id 0, mask 0) after a random length of at least half the sequence."""
    rng = np.random.default_rng(SEED + seed)
    out = []
    for _ in range(count):
        ids = rng.integers(2, VOCAB, (batch, length), dtype=np.int64)
        mask = (np.arange(length) < rng.integers(length // 2, length + 1, (batch, 1)))
        out.append({"input_ids": np.where(mask, ids, 0), "attention_mask": mask.astype(np.int64)})
    return out


def labelled(model: Any, batches: Sequence[Any], output: int = 0) -> list[tuple[Any, Any]]:
    """``(inputs, FP32 top-1)`` pairs: with the ``topk`` metric, agreement with FP32."""
    runner = model if isinstance(model, OrtModel) else OrtModel(model)
    return [(b, runner.run(b)[output].argmax(-1)) for b in batches]


def cosine_to(reference: Any, batches: Sequence[Any]) -> Callable[[OrtModel], float]:
    """An eval_func: the mean cosine similarity of a model's first output to ``reference``'s,
    per sample (the model is an :class:`OrtModel`, as the FP32 model given to tune is)."""
    expected = [reference.run(b)[0] for b in batches]

    def cosine(model: OrtModel) -> float:
        scores = []
        for batch, want in zip(batches, expected):
            got = model.run(batch)[0]
            scores.append((got * want).sum(-1) / (np.linalg.norm(got, axis=-1)
                                                  * np.linalg.norm(want, axis=-1)))
        return float(np.concatenate(scores).mean())

    return cosine


# --------------------------------------------------------------------------- tuning

def tune(model: Any, calib: Any, workspace: Path, **kw: Any) -> TuneResult:
    """``tunekit.tune`` as a new user calls it on an ONNX model, with the zoo's budget: few
    trials, a 2% relative goal, the size objective (timing is other tests' business)."""
    kw.setdefault("max_trials", 4)
    kw.setdefault("objective", "size")
    kw.setdefault("accuracy_criterion", {"relative": 0.02})
    if "eval_func" not in kw:
        kw.setdefault("metric", "topk")
    return tunekit.tune(model, calib, framework="onnxrt", workspace=str(workspace), quiet=True,
                        **kw)


def assert_tuned(result: TuneResult) -> None:
    """The goal met by a model with int8 ops in it, no trial failed, the result on disk."""
    assert result.met and result.best_trial is not None, result.summary()
    assert result.best_config.counts().get("int8", 0) > 0, result.best_config
    assert not [t.error for t in result.trials if t.failed]
    assert isinstance(result.best_model, OrtModel)
    assert (result.workspace / "best_model.onnx").is_file()
