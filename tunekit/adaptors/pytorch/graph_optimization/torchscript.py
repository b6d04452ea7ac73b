"""Pass ``torchscript``: freeze the optimized graph as TorchScript when that runs faster here.

``torch.jit.freeze`` + ``torch.jit.optimize_for_inference`` lower a graph to frozen oneDNN
convolutions with fused Conv+Add+ReLU epilogues and weights pre-packed once, which the FX
graph cannot express (measured on the ResNet-18-like R2, 2 cores: 24.5 ms TorchScript against
25.9 ms FX). On Linear-heavy models (the BERT-like R3) the TorchScript executor is slower than the
FX graph (56.5 ms against 53.4 ms). So both are built from the already-optimized graph (BN folded,
projections fused, ...) and timed on the example batch, interleaved, and the faster one is kept;
the TorchScript candidate must also give the FX graph's outputs within 1e-4 relative. Each is
scored by its fastest round: load from other processes only adds time, and on a shared 2-core
machine it added up to 10× to single rounds of 2-thread runs, enough to flip a median of 7.

Without an example batch nothing can be traced or timed, and the FX graph is kept.

The kept module holds oneDNN-prepacked weights (opaque tensors TorchScript cannot serialize), so
:func:`save` writes the trace before freezing (MKLDNN modules serialize dense) and :func:`load`
freezes and lowers it again.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from tunekit.graph.pipeline import ExamplePass

#: interleaved timing rounds after warm-up (the profiling executor specializes on call 2)
ROUNDS = 9
WARMUP = 3
#: lowered module → its unfrozen trace, the form that serializes (see :func:`save`)
_TRACES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


class TorchScript(ExamplePass):
    name = "torchscript"
    framework = "pytorch"
    order = 110
    precisions = frozenset({"fp32"})

    def run(self, graph: fx.GraphModule) -> nn.Module:
        if not isinstance(graph, fx.GraphModule):
            self.note = f"skipped: the graph is already lowered ({type(graph).__name__})"
            return graph
        if self.example_inputs is None:
            self.note = "kept FX: no example batch to trace and time"
            return graph
        inputs = self.example_inputs
        with torch.no_grad():
            try:
                traced = torch.jit.trace(graph, inputs, strict=False)
                scripted = lower(traced)
                for _ in range(WARMUP):
                    expected, got = graph(*inputs), scripted(*inputs)
            except Exception as exc:  # noqa: BLE001 - any trace failure keeps the FX graph
                self.note = f"kept FX: TorchScript failed ({type(exc).__name__}: {exc})"[:200]
                return graph
            error = relative_error(got, expected)
            if error > 1e-4:
                self.note = f"kept FX: TorchScript outputs differ ({error:.1e} relative)"
                return graph
            fx_ms, script_ms = interleaved([lambda: graph(*inputs), lambda: scripted(*inputs)])
        faster = script_ms < fx_ms
        self.note = (f"kept {'TorchScript' if faster else 'FX'}: TorchScript {script_ms:.2f} ms, "
                     f"FX {fx_ms:.2f} ms on the example batch")
        if not faster:
            return graph
        _TRACES[scripted] = traced
        return scripted


def save(module: torch.jit.ScriptModule, path: str | Path) -> None:
    """Write a module this pass kept as a TorchScript archive (``.pt``); :func:`load` reads it."""
    torch.jit.save(_TRACES.get(module, module), str(path))


def load(path: str | Path) -> torch.jit.ScriptModule:
    """A module :func:`save` wrote, frozen and lowered for inference again."""
    return lower(torch.jit.load(str(path)).eval())


def lower(traced: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


def interleaved(candidates: Sequence[Callable[[], Any]]) -> list[float]:
    """Fastest milliseconds per call of each candidate, one call each per round, so that load
    from other processes hits every candidate alike."""
    samples: list[list[float]] = [[] for _ in candidates]
    for _ in range(ROUNDS):
        for fn, times in zip(candidates, samples):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
    return [min(times) for times in samples]


def _leaves(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _leaves(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _leaves(v)]
    return []


def relative_error(got: Any, expected: Any) -> float:
    """Largest absolute difference over the largest expected magnitude, across all outputs."""
    pairs = list(zip(_leaves(got), _leaves(expected)))
    if len(pairs) != len(_leaves(expected)):
        return float("inf")
    worst = 0.0
    for g, e in pairs:
        g, e = g.to_dense().double() if g.is_mkldnn else g.double(), e.double()
        worst = max(worst, (g - e).abs().max().item() / max(e.abs().max().item(), 1e-12))
    return worst
