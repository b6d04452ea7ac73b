"""Small models whose int8 forms are mostly glue: activations, gates, pooling, residual adds,
concatenations, attention matmuls. Shared by the float-island tests and
``benchmarks/int8_islands.py`` (which builds them wider and feeds them larger inputs).

Each class takes a ``width`` multiplier; ``ARCHITECTURES`` names them with their input shape
(channels first, no batch dimension) at test size.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """MobileNetV3's gate: global pool, two 1×1 convs, hardsigmoid, multiply."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, max(channels // 4, 8), 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(max(channels // 4, 8), channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: Any) -> Any:
        return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """Expand 1×1, depthwise k×k, optional squeeze-excite, project 1×1, residual add."""

    def __init__(self, cin: int, expand: int, cout: int, kernel: int, stride: int, se: bool,
                 hardswish: bool) -> None:
        super().__init__()
        act = nn.Hardswish if hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if expand != cin:
            layers += [nn.Conv2d(cin, expand, 1, bias=False), nn.BatchNorm2d(expand), act()]
        layers += [nn.Conv2d(expand, expand, kernel, stride, kernel // 2, groups=expand,
                             bias=False), nn.BatchNorm2d(expand), act()]
        if se:
            layers.append(SqueezeExcite(expand))
        layers += [nn.Conv2d(expand, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Any) -> Any:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3Small(nn.Module):
    """MobileNetV3-small's layout (hardswish stem, inverted residuals with depthwise convs and
    squeeze-excite gates, hardswish head), fewer blocks."""

    def __init__(self, classes: int = 10, width: int = 1, in_channels: int = 3) -> None:
        super().__init__()
        c = [v * width for v in (16, 24, 40, 48, 96)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c[0], 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(c[0]), nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(c[0], c[0], c[0], 3, 2, True, False),
            InvertedResidual(c[0], 4 * c[0], c[1], 3, 2, False, False),
            InvertedResidual(c[1], 4 * c[1] - 8 * width, c[1], 3, 1, False, False),
            InvertedResidual(c[1], 4 * c[1], c[2], 5, 2, True, True),
            InvertedResidual(c[2], 6 * c[2], c[2], 5, 1, True, True),
            InvertedResidual(c[2], 3 * c[2], c[3], 5, 1, True, True),
            InvertedResidual(c[3], 6 * c[3], c[4], 5, 2, True, True))
        self.head = nn.Sequential(nn.Conv2d(c[4], 6 * c[4], 1, bias=False),
                                  nn.BatchNorm2d(6 * c[4]), nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * c[4], 256), nn.Hardswish(),
                                        nn.Dropout(0.2), nn.Linear(256, classes))

    def forward(self, x: Any) -> Any:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """ResNet basic block; a strided block projects its shortcut with a 1×1 conv."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: Any) -> Any:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNetLike(nn.Module):
    """Stem conv + max-pool, three stages of two basic blocks, average pool, linear."""

    def __init__(self, classes: int = 10, width: int = 1) -> None:
        super().__init__()
        c = [v * width for v in (16, 32, 64)]
        self.stem = nn.Sequential(nn.Conv2d(3, c[0], 3, 1, 1, bias=False), nn.BatchNorm2d(c[0]),
                                  nn.ReLU(), nn.MaxPool2d(2))
        stages, cin = [], c[0]
        for i, cout in enumerate(c):
            stages += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c[-1], classes)

    def forward(self, x: Any) -> Any:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


class DenseLayer(nn.Module):
    """DenseNet's pre-activation layer (BN-ReLU-conv 1×1, BN-ReLU-conv 3×3), concatenated."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU()
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(4 * growth), nn.ReLU()
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: Any) -> Any:
        y = self.conv1(self.relu1(self.bn1(x)))
        return torch.cat([x, self.conv2(self.relu2(self.bn2(y)))], 1)


class ConcatNet(nn.Module):
    """An Inception block (1×1, 3×3 and pooled branches concatenated), then a DenseNet block of
    three layers and a transition (BN-ReLU-conv, average pool)."""

    def __init__(self, classes: int = 10, width: int = 1) -> None:
        super().__init__()
        c = 16 * width
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU())
        self.branch1 = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU())
        self.branch3 = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1),
                                     nn.ReLU())
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, c, 1), nn.ReLU())
        growth, cin = 8 * width, 3 * c
        self.dense = nn.Sequential(*[DenseLayer(cin + i * growth, growth) for i in range(3)])
        cin += 3 * growth
        self.transition = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, c, 1),
                                        nn.AvgPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: Any) -> Any:
        x = self.stem(x)
        x = torch.cat([self.branch1(x), self.branch3(x), self.branch_pool(x)], 1)
        x = self.transition(self.dense(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer written out: LayerNorm, q/k/v Linear, ``q @ kᵀ``, softmax,
    ``@ v``, output Linear, residual add; LayerNorm, GELU MLP, residual add."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.query, self.key = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.value, self.out = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.fc1, self.act, self.fc2 = nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(
            4 * hidden, hidden)

    def _split(self, x: Any) -> Any:
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Any) -> Any:
        h = self.norm1(x)
        q, k, v = self._split(self.query(h)), self._split(self.key(h)), self._split(self.value(h))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        context = (scores.softmax(dim=-1) @ v).transpose(1, 2).flatten(2)
        x = x + self.out(context)
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class TinyEncoder(nn.Module):
    """Two encoder layers over a sequence of feature vectors, mean-pooled, then a classifier."""

    def __init__(self, classes: int = 10, width: int = 1, features: int = 16) -> None:
        super().__init__()
        hidden = 32 * width
        self.embed = nn.Linear(features, hidden)
        self.layers = nn.Sequential(EncoderLayer(hidden, 4), EncoderLayer(hidden, 4))
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Any) -> Any:
        return self.head(self.norm(self.layers(self.embed(x))).mean(dim=1))


#: name → (class, input shape without the batch dimension) at test size
ARCHITECTURES: dict[str, tuple[type[nn.Module], tuple[int, ...]]] = {
    "mobilenet_v3_small": (MobileNetV3Small, (3, 32, 32)),
    "resnet": (ResNetLike, (3, 16, 16)),
    "concat": (ConcatNet, (3, 16, 16)),
    "transformer": (TinyEncoder, (12, 16)),
}


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, as training would, so
    folding and standalone int8 BatchNorm kernels are exercised with real values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                size = module.num_features
                module.running_mean.copy_(torch.rand(size, generator=generator) * 0.4 - 0.2)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)
    return model.eval()


def qdq_counts(model: Any) -> tuple[int, int]:
    """(quantize nodes, dequantize nodes) of a converted FX GraphModule: the float islands an
    int8 model pays for, plus its input's quantize and its output's dequantize."""
    nodes = list(model.graph.nodes)
    quantize = sum(n.op == "call_function" and n.target is torch.quantize_per_tensor
                   for n in nodes)
    dequantize = sum(n.op == "call_method" and n.target == "dequantize" for n in nodes)
    return quantize, dequantize


def torch_default_int8(model: nn.Module, inputs: Iterable[Any]) -> Any:
    """torch.ao's own default int8: the x86 default qconfig mapping, ``prepare_fx``, one pass
    over the calibration inputs, ``convert_fx`` (x86 engine)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    inputs = list(inputs)
    prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"),
                          example_inputs=(inputs[0],))
    with torch.no_grad():
        for x in inputs:
            prepared(x)
    return convert_fx(prepared)
