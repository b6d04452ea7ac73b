"""Pass ``inductor``: compile the optimized graph with ``torch.compile`` (Inductor, weights frozen)
when that beats both the FX graph and its frozen TorchScript form on the example batch.

Inductor with ``freezing`` folds the weights into the compiled code, prepacks them for oneDNN and
fuses the pointwise ops around convolutions and GEMMs into generated C++ loops, which neither FX
nor TorchScript's ``optimize_for_inference`` does. Measured on the ResNet-18-like R2 (bs4 128²,
2 threads): 24.7 ms against 27.5 ms for ``torch.jit.freeze`` + ``optimize_for_inference``.

It costs a compilation (about 25 s for R2 on 2 cores, cached by torch afterwards) and needs a C++
compiler, so it runs only with an example batch, and it is kept only where it measures faster
(fastest of 9 interleaved rounds, as :mod:`.torchscript`); outputs must
equal the FX graph's within 1e-4 relative. When kept, the later lowering passes leave the compiled
module as it is. It is compiled for calls under ``torch.no_grad()`` and ``torch.inference_mode()``
(Dynamo guards on the mode: a first ``inference_mode`` call would otherwise recompile without
frozen weights, measured 2.4× slower on R2); other modes and shapes recompile without them.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from tunekit.adaptors.pytorch.graph_optimization.torchscript import (
    WARMUP,
    interleaved,
    lower,
    relative_error,
)
from tunekit.graph.pipeline import ExamplePass

#: how much faster Inductor must time to be kept: a compiled module recompiles on new shapes or
#: grad modes and needs a C++ compiler, and on the example batch a near-tie can flip (a 3% "win"
#: there measured 2% slower than TorchScript in the benchmark's medians)
MARGIN = 0.05


class Inductor(ExamplePass):
    name = "inductor"
    framework = "pytorch"
    order = 100
    precisions = frozenset({"fp32"})

    def run(self, graph: fx.GraphModule) -> nn.Module:
        if self.example_inputs is None:
            self.note = "kept FX: no example batch to compile and time"
            return graph
        inputs = self.example_inputs
        with torch.no_grad():
            try:
                expected = graph(*inputs)
                with torch._inductor.config.patch(freezing=True):
                    compiled = torch.compile(graph)
                    for mode in (torch.no_grad, torch.inference_mode):  # guarded apart
                        with mode():
                            for _ in range(WARMUP):
                                got = compiled(*inputs)
                scripted = lower(torch.jit.trace(graph, inputs, strict=False))
                for _ in range(WARMUP):
                    scripted(*inputs)
            except Exception as exc:  # noqa: BLE001 - no compiler, untraceable op: keep FX
                self.note = f"kept FX: compilation failed ({type(exc).__name__}: {exc})"[:200]
                return graph
            error = relative_error(got, expected)
            if error > 1e-4:
                self.note = f"kept FX: compiled outputs differ ({error:.1e} relative)"
                return graph
            fx_ms, script_ms, compiled_ms = interleaved(
                [lambda: graph(*inputs), lambda: scripted(*inputs), lambda: compiled(*inputs)])
        faster = compiled_ms < (1.0 - MARGIN) * min(fx_ms, script_ms)
        self.note = (f"{'compiled' if faster else 'kept FX for the next passes'}: Inductor "
                     f"{compiled_ms:.2f} ms, TorchScript {script_ms:.2f} ms, FX {fx_ms:.2f} ms "
                     f"on the example batch")
        return compiled if faster else graph
