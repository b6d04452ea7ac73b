"""Workloads whose int8 culprits sit anywhere but first: small PyTorch models trained on
scikit-learn's digits, then given culprits by function-preserving surgery.

Imported by ``fallback_culprits.py`` (tunekit's side) and ``culprit_inc.py`` (Intel Neural
Compressor's side, in its own environment), so both tools tune identical weights; needs torch,
numpy and scikit-learn only.

Two kinds of culprit, both leaving the FP32 function unchanged (up to float rounding):

- **weight culprit** (one op): a new hidden unit that is always zero feeds op ``fc`` through a
  weight 1000× its largest one; per-channel int8 weights of ``fc`` then round nearly every other
  weight to zero. Only ``fc`` in float recovers the accuracy;
- **activation pair** (two ops that matter only together): op ``a`` gains two units
  ``C1 + z`` and ``C2 - z`` (``C1``, ``C2`` large, ``z`` an existing pre-activation) that op
  ``b`` adds up and cancels with its bias. int8 activations quantize them with a step of about
  ``C1/256``, so the cancellation leaves a large error (and the ordinary units round to zero),
  whether ``a``'s output or ``b``'s input is quantized: both must be float, and either alone
  gains nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

#: Offsets of the two activation-pair units: large against ordinary activations, and unequal
#: so that their int8 rounding errors do not cancel each other.
OFFSETS = (1e4, 0.618 * 1e4)


def digits() -> dict[str, np.ndarray]:
    """scikit-learn's digits, pixels scaled to [0, 1]: 1,200 training images (the first 100
    also calibrate), 597 evaluation images; a fixed permutation, so every process agrees."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    x = (data.data[order] / 16.0).astype(np.float32)
    y = data.target[order].astype(np.int64)
    return {"x_train": x[:1200], "y_train": y[:1200], "x_eval": x[1200:], "y_eval": y[1200:]}


class MLP(nn.Module):
    """Linear layers ``fc1..fcN`` with ReLU between them (op names a reader can follow)."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.names = [f"fc{i + 1}" for i in range(len(widths) - 1)]
        for name, (n_in, n_out) in zip(self.names, zip(widths, widths[1:])):
            setattr(self, name, nn.Linear(n_in, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names[:-1]:
            x = torch.relu(getattr(self, name)(x))
        return getattr(self, self.names[-1])(x)


#: The branches of :class:`Branches` that carry most of the signal (the others are scaled down).
MAIN_BRANCHES = (7, 19, 33)


class Branches(nn.Module):
    """A stem and ``n`` branches of three Linear ops whose logits are summed: ``1 + 3n`` ops.

    The :data:`MAIN_BRANCHES` carry the signal; the others enter the sum scaled by 0.05, so a
    culprit in a main branch costs accuracy (an error in one of forty equal branches would be
    averaged away: a quantized op's output saturates at its calibrated range)."""

    def __init__(self, n: int = 40, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Linear(64, 64)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, 10)) for _ in range(n))
        self.weights = [1.0 if i in MAIN_BRANCHES else 0.05 for i in range(n)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        out = self.weights[0] * self.branches[0](h)
        for weight, branch in zip(self.weights[1:], self.branches[1:]):
            out = out + weight * branch(h)
        return out


def train(build: Callable[[], nn.Module], data: dict[str, np.ndarray],
          epochs: int = 40) -> nn.Module:
    """``build()`` trained by Adam on the training split, seeded before the model is built: the
    same weights in every run. One thread: on a shared machine several threads over such small
    matrices only wait on each other."""
    torch.manual_seed(0)
    model = build()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x, y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for index in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()
    torch.set_num_threads(threads)
    return model.eval()


def _grow(a: nn.Linear, b: nn.Linear, rows: torch.Tensor, biases: torch.Tensor,
          columns: torch.Tensor) -> tuple[nn.Linear, nn.Linear]:
    """``a`` with extra output units (``rows``, ``biases``) and ``b`` with the matching extra
    input columns (``columns``, one per new unit)."""
    grown_a = nn.Linear(a.in_features, a.out_features + len(rows))
    grown_b = nn.Linear(b.in_features + len(rows), b.out_features)
    with torch.no_grad():
        grown_a.weight.copy_(torch.cat([a.weight, rows]))
        grown_a.bias.copy_(torch.cat([a.bias, biases]))
        grown_b.weight.copy_(torch.cat([b.weight, columns], dim=1))
        grown_b.bias.copy_(b.bias)
    return grown_a, grown_b


def weight_culprit(a: nn.Linear, b: nn.Linear) -> tuple[nn.Linear, nn.Linear]:
    """Make ``b`` a culprit: a dead unit of ``a`` (output always 0) with a huge weight in ``b``."""
    rows = torch.zeros(1, a.in_features)
    column = torch.full((b.out_features, 1), 1000.0 * float(b.weight.detach().abs().max()))
    return _grow(a, b, rows, torch.full((1,), -1.0), column)


def activation_pair(a: nn.Linear, b: nn.Linear) -> tuple[nn.Linear, nn.Linear]:
    """Make ``a`` and ``b`` a pair: units ``C1+z`` and ``C2-z`` that ``b`` sums and cancels."""
    z = a.weight[:1].detach()
    rows = torch.cat([z, -z])
    biases = torch.stack([OFFSETS[0] + a.bias[0].detach(), OFFSETS[1] - a.bias[0].detach()])
    gain = 4.0 * float(b.weight.detach().abs().max())
    columns = torch.full((b.out_features, 2), gain)
    grown_a, grown_b = _grow(a, b, rows, biases, columns)
    with torch.no_grad():
        grown_b.bias.sub_(sum(OFFSETS) * gain)
    return grown_a, grown_b


def _mlp_surgery(model: MLP, culprits: list[tuple[str, Callable, int]]) -> MLP:
    for kind, index in ((kind, index) for _, kind, index in culprits):
        a, b = getattr(model, f"fc{index - 1}"), getattr(model, f"fc{index}")
        a, b = kind(a, b)
        setattr(model, f"fc{index - 1}", a)
        setattr(model, f"fc{index}", b)
    return model


@dataclass(frozen=True)
class Workload:
    """A model to build and the ops that must leave int8 (the minimal set, by construction)."""

    name: str
    what: str
    build: Callable[[dict[str, np.ndarray]], nn.Module]
    minimal: tuple[str, ...]


def _mlp(widths: list[int], culprits: list[tuple[str, Callable, int]]
         ) -> Callable[[dict[str, np.ndarray]], nn.Module]:
    """Train an MLP, then give op ``fc{index}`` (and ``fc{index-1}`` for a pair) its culprit."""
    return lambda data: _mlp_surgery(train(lambda: MLP(widths), data), culprits).eval()


def _branches(data: dict[str, np.ndarray]) -> nn.Module:
    model = train(Branches, data, epochs=25)
    for index in MAIN_BRANCHES:
        branch = model.branches[index]
        branch[2], branch[4] = activation_pair(branch[2], branch[4])
    return model.eval()


DEEP = [64, 96, 96, 96, 96, 96, 96, 96, 10]

WORKLOADS = (
    Workload("pair_at_end", "4 Linear, activation outlier between the last two",
             _mlp([64, 128, 128, 64, 10], [("pair", activation_pair, 4)]), ("fc3", "fc4")),
    Workload("middle", "8 Linear, weight culprit fc5",
             _mlp(DEEP, [("weight", weight_culprit, 5)]), ("fc5",)),
    Workload("several", "8 Linear, weight culprits fc3, fc6, fc8",
             _mlp(DEEP, [("weight", weight_culprit, i) for i in (3, 6, 8)]),
             ("fc3", "fc6", "fc8")),
    Workload("pair_middle", "8 Linear, activation pair fc4+fc5",
             _mlp(DEEP, [("pair", activation_pair, 5)]), ("fc4", "fc5")),
    Workload("branches_121", "121 Linear, pairs in 3 of 40 branches", _branches,
             tuple(f"branches.{i}.{j}" for i in MAIN_BRANCHES for j in (2, 4))),
)


def top1(model: nn.Module, data: dict[str, np.ndarray]) -> float:
    """Top-1 on the evaluation split."""
    with torch.inference_mode():
        predicted = model(torch.from_numpy(data["x_eval"])).argmax(1).numpy()
    return float((predicted == data["y_eval"]).mean())


def speedup(fp32: nn.Module, tuned: nn.Module, data: dict[str, np.ndarray], rounds: int = 7,
            calls: int = 10) -> float:
    """FP32 time / tuned time per call on a batch of 100 evaluation images: medians over rounds
    that alternate the two models, so a change in machine load hits both alike."""
    import statistics
    import time

    x = torch.from_numpy(data["x_eval"][:100])
    times: dict[int, list[float]] = {0: [], 1: []}
    with torch.inference_mode():
        for model in (fp32, tuned):
            for _ in range(3):
                model(x)
        for _ in range(rounds):
            for key, model in enumerate((fp32, tuned)):
                for _ in range(calls):
                    start = time.perf_counter()
                    model(x)
                    times[key].append(time.perf_counter() - start)
    return round(statistics.median(times[0]) / statistics.median(times[1]), 3)


def batches(x: np.ndarray, y: np.ndarray, size: int = 100) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.from_numpy(x[i:i + size]), torch.from_numpy(y[i:i + size]))
            for i in range(0, len(x), size)]


__all__ = ["WORKLOADS", "Workload", "batches", "digits", "speedup", "top1"]
