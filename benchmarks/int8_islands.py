#!/usr/bin/env python
"""Float islands: tunekit's default int8 against torch.ao's own default int8, per architecture.

    .venv/bin/python benchmarks/int8_islands.py [--batch 32] [--rounds 7] [--quick]

For a MobileNetV3-small-like net (depthwise convs, squeeze-excite gates, hardswish), a ResNet-like
net (residual adds), a concatenating net (Inception branches and a DenseNet block) and a small
transformer encoder (matmuls, softmax, LayerNorm), all from ``tests/adaptors/glue_models.py``
built wider and fed larger inputs, with randomized BatchNorm statistics, this builds in one
process:

- FP32 eager (the baseline);
- torch.ao's default int8 as torch deploys it: ``get_default_qconfig_mapping("x86")``,
  ``prepare_fx``, calibration, ``convert_fx``, then ``torch.jit.trace`` + ``torch.jit.freeze``;
  the same model before tracing is timed too (FX eager), so runtime and graph effects separate;
- tunekit's default int8 as tunekit deploys it: ``PyTorchAdaptor`` (FX backend), calibrated once,
  the space's default config, the converted ``GraphModule`` run as returned; and the same model
  traced and frozen like torch's, so the graph and the runtime effects separate.

Latency is the median of interleaved rounds (the machine is shared, so all variants see the same
load). Reported per model: quantize/dequantize node counts, speed-up over FP32, tunekit's speed
as a fraction of torch.ao's deployed default, and agreement with FP32 (top-1 agreement and the
largest output error relative to the output scale) on held-out inputs. A model PASSes when
tunekit is at least 0.95 as fast as torch.ao's deployed default and carries no more quantize or
dequantize nodes; the exit status is 1 if any model fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "adaptors"))
import glue_models  # noqa: E402  (the repository's own test models)

from tunekit.adaptors.pytorch import PyTorchAdaptor  # noqa: E402

#: name → (width multiplier, input shape without batch) at benchmark size
SIZES: dict[str, tuple[int, tuple[int, ...]]] = {
    "mobilenet_v3_small": (1, (3, 96, 96)),
    "resnet": (2, (3, 64, 64)),
    "concat": (2, (3, 64, 64)),
    "transformer": (4, (64, 16)),
}
QUICK_SIZES: dict[str, tuple[int, tuple[int, ...]]] = {
    "mobilenet_v3_small": (1, (3, 48, 48)),
    "resnet": (1, (3, 32, 32)),
    "concat": (1, (3, 32, 32)),
    "transformer": (2, (32, 16)),
}
SPEED_FLOOR = 0.95
FP32, AO_EAGER, AO_JIT, TUNEKIT, TUNEKIT_JIT = (
    "FP32 eager", "torch.ao default int8 (FX eager)", "torch.ao default int8 (FX + jit freeze)",
    "tunekit default int8", "tunekit default int8 + jit freeze")


def qdq(model: Any) -> str:
    """``quantize/dequantize`` node counts of an FX GraphModule."""
    return "{}/{}".format(*glue_models.qdq_counts(model))


def jit_frozen(model: nn.Module, example: torch.Tensor) -> nn.Module:
    with torch.no_grad():
        return torch.jit.freeze(torch.jit.trace(model, example).eval())


def tunekit_default(model: nn.Module, calib: list[torch.Tensor]) -> nn.Module:
    adaptor = PyTorchAdaptor(backend="fx")
    space = adaptor.capabilities(model)
    batches = [(batch, None) for batch in calib]
    adaptor.calibrate(model, space, batches)
    return adaptor.quantize(model, space.default(), batches)


def timed(variants: dict[str, Callable[[], Any]], rounds: int, calls: int) -> dict[str, float]:
    """Median seconds per call of each variant, in interleaved rounds after a warm-up."""
    with torch.inference_mode():
        for run in variants.values():
            run(), run(), run()
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, run in variants.items():
                start = time.perf_counter()
                for _ in range(calls):
                    run()
                samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in samples.items()}


def agreement(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(top-1 agreement with the reference, largest error / largest reference output)."""
    with torch.inference_mode():
        got, expected = model(x).float(), reference(x).float()
    top1 = float((got.argmax(1) == expected.argmax(1)).float().mean())
    return top1, float((got - expected).abs().max() / expected.abs().max())


def measure(name: str, width: int, shape: tuple[int, ...], batch: int, rounds: int
            ) -> dict[str, Any]:
    make, _ = glue_models.ARCHITECTURES[name]
    torch.manual_seed(0)
    model = glue_models.randomize_batchnorm(make(width=width))
    calib = [torch.randn(batch, *shape) for _ in range(4)]
    held_out = torch.randn(4 * batch, *shape)
    x = torch.randn(batch, *shape)
    ao = glue_models.torch_default_int8(model, calib)
    tunekit = tunekit_default(model, calib)
    variants = {FP32: model, AO_EAGER: ao, AO_JIT: jit_frozen(ao, x), TUNEKIT: tunekit,
                TUNEKIT_JIT: jit_frozen(tunekit, x)}
    times = timed({k: (lambda m=m: m(x)) for k, m in variants.items()}, rounds,
                  calls=max(2, 16 // max(1, batch // 8)))
    return {"times": times, "qdq": {AO_EAGER: qdq(ao), TUNEKIT: qdq(variants[TUNEKIT])},
            "agree": {k: agreement(m, model, held_out) for k, m in variants.items()
                      if k != FP32}}


def verdict(result: dict[str, Any]) -> tuple[bool, float]:
    times, counts = result["times"], result["qdq"]
    fraction = times[AO_JIT] / times[TUNEKIT]
    ours = [int(v) for v in counts[TUNEKIT].split("/")]
    theirs = [int(v) for v in counts[AO_EAGER].split("/")]
    return fraction >= SPEED_FLOOR and all(a <= b for a, b in zip(ours, theirs)), fraction


def report(results: dict[str, dict[str, Any]], batch: int) -> bool:
    print(f"\nbatch {batch}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"engine {torch.backends.quantized.engine}\n")
    print("| model | FP32 ms | torch.ao FX eager | torch.ao FX + jit | tunekit | tunekit + jit | "
          "tunekit / torch.ao jit | tunekit / torch.ao FX eager | Q/DQ torch.ao | Q/DQ tunekit | "
          "top-1 agree ao / tunekit | max err ao / tunekit | check |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    passed = True
    for name, result in results.items():
        t, agree = result["times"], result["agree"]
        ok, fraction = verdict(result)
        passed &= ok
        print(f"| {name} | {1e3 * t[FP32]:.2f} | {t[FP32] / t[AO_EAGER]:.2f}× | "
              f"{t[FP32] / t[AO_JIT]:.2f}× | {t[FP32] / t[TUNEKIT]:.2f}× | "
              f"{t[FP32] / t[TUNEKIT_JIT]:.2f}× | {fraction:.2f} | "
              f"{t[AO_EAGER] / t[TUNEKIT]:.2f} | "
              f"{result['qdq'][AO_EAGER]} | {result['qdq'][TUNEKIT]} | "
              f"{agree[AO_JIT][0]:.3f} / {agree[TUNEKIT][0]:.3f} | "
              f"{agree[AO_JIT][1]:.3f} / {agree[TUNEKIT][1]:.3f} | "
              f"{'PASS' if ok else 'FAIL'} |")
    print(f"\nPASS = tunekit ≥ {SPEED_FLOOR} of torch.ao's deployed default speed and no more "
          "quantize/dequantize nodes than it. Overall:", "PASS" if passed else "FAIL")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="small inputs (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "x86"
    warnings.filterwarnings("ignore")
    results = {}
    for name, (width, shape) in (QUICK_SIZES if args.quick else SIZES).items():
        print(f"measuring {name} ...", flush=True)
        results[name] = measure(name, width, shape, args.batch, args.rounds)
    return 0 if report(results, args.batch) else 1


if __name__ == "__main__":
    sys.exit(main())
