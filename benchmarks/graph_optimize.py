"""Graph optimization benchmark: tunekit's FP32 passes and bf16 AMP against the frameworks' own
inference optimizers, on the same models in one run.

    .venv/bin/python benchmarks/graph_optimize.py [--quick] [--rounds N] [--only pytorch|tensorflow]

PyTorch (R2 ResNet-18-like, R3 BERT-like from ``workloads/refmodels.py``): eager FP32 (baseline),
``torch.jit.freeze`` + ``torch.jit.optimize_for_inference``, ``torch.compile`` with frozen
weights (Inductor, the framework's current FP32 path), tunekit FP32, tunekit bf16 (every
Conv/Linear). TensorFlow (the Keras digits CNN twin and a wider conv block): ``tf.function``
(baseline), TF's ``optimize_for_inference`` tool on the frozen graph, tunekit FP32 and bf16; both
frozen graphs run the same way (:class:`FrozenGraph`, a ``tf.function`` importing the GraphDef).
BatchNorm statistics are randomized (as after training), so BN folding has real work to do.
Latency is the median of interleaved rounds (the machine is shared); outputs of FP32 variants are
checked against the original on held-out inputs (max error relative to the output scale), and the
checks of the issue are printed at the end, each PASS or FAIL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "workloads"))
import refmodels

Row = tuple[str, str, float, float | None]
EAGER, JIT, TOOL, FUNCTION = ("eager fp32 (baseline)", "torch.jit freeze+optimize_for_inference",
                              "TF optimize_for_inference tool", "tf.function fp32 (baseline)")
FP32, BF16 = "tunekit fp32", "tunekit bf16 (AMP)"
COMPILE = "torch.compile, frozen weights (inductor)"
#: FP32 speed ratios in [TIE, 1) are reported as a tie, not a pass or a failure: on the shared
#: 2-core machine, repeated runs of one comparison spread by about ±2%
TIE = 0.98
#: bf16 keeps 8 bits of mantissa: outputs within this error relative to their scale (measured
#: here: 1e-3 to 1e-2 on these models), while a wrong cast or a dropped op is far above it
BF16_ERROR = 5e-2


def timed(variants: dict[str, Callable[[], Any]], rounds: int, iters: int) -> dict[str, float]:
    """Median seconds per call of each variant, rounds interleaved so load hits all alike."""
    for fn in variants.values():
        fn(), fn(), fn()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            samples[name].append((time.perf_counter() - start) / iters)
    return {name: statistics.median(values) for name, values in samples.items()}


def rel_error(got: Any, expected: Any) -> float:
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))


def trained_bn_torch(model: Any) -> Any:
    """Random BatchNorm statistics and affine parameters, as a trained model has."""
    import torch

    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
            module.weight.data.copy_(1 + 0.2 * torch.randn(size, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(size, generator=generator))
    return model.eval()


def trained_bn_keras(model: Any) -> Any:
    import tensorflow as tf

    rng = np.random.RandomState(1)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = (w.shape for w in layer.get_weights())
            layer.set_weights([1 + 0.2 * rng.randn(*gamma), 0.1 * rng.randn(*beta),
                               0.1 * rng.randn(*mean), 0.5 + rng.rand(*var)])
    return model


def pytorch_rows(quick: bool, rounds: int) -> list[Row]:
    import torch

    torch.set_num_threads(2)
    cases = [("R2 resnet18-like bs4 128²", trained_bn_torch(refmodels.build_r2()),
              lambda seed: torch.randn(4, 3, 128, 128,
                                       generator=torch.Generator().manual_seed(seed))),
             ("R3 bert-like bs8 seq128", refmodels.build_r3(layers=2 if quick else 4),
              lambda seed: refmodels.r3_input(8, seed=seed))]
    return [row for name, model, make in cases
            for row in pytorch_case(name, model, make(0), make(123), rounds)]


def pytorch_case(name: str, model: Any, example: Any, held_out: Any, rounds: int) -> list[Row]:
    import torch

    import tunekit

    with torch.no_grad():
        jit = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example)))
    with torch._inductor.config.patch(freezing=True), torch.inference_mode():
        compiled = torch.compile(model, dynamic=False)
        compiled(held_out)  # compiles (for inference_mode, the mode timed below)
    fp32 = tunekit.optimize_graph(model, ("fp32",), example_data=[(example, None)])
    bf16 = tunekit.optimize_graph(model, ("bf16",), example_data=[(example, None)]).model
    print(f"{name}: {fp32.reports[-1].line()}", file=sys.stderr)
    with torch.inference_mode():
        reference = model(held_out)
        errors = {JIT: rel_error(jit(held_out), reference),
                  COMPILE: rel_error(compiled(held_out), reference),
                  FP32: rel_error(fp32.model(held_out), reference),
                  BF16: rel_error(bf16(held_out).float(), reference)}
        variants = {EAGER: lambda: model(held_out), JIT: lambda: jit(held_out),
                    COMPILE: lambda: compiled(held_out),
                    FP32: lambda: fp32.model(held_out), BF16: lambda: bf16(held_out)}
        times = timed(variants, rounds, 1)
    return [(name, v, t, errors.get(v)) for v, t in times.items()]


def keras_block() -> Any:
    import tensorflow as tf

    inputs = tf.keras.Input((32, 32, 16))
    x = inputs
    for width in (32, 64, 64):
        x = tf.keras.layers.Conv2D(width, 3, padding="same")(x)
        x = tf.keras.layers.BatchNormalization()(x)
        x = tf.keras.layers.ReLU()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10)(
        tf.keras.layers.GlobalAveragePooling2D()(x)))


def tensorflow_rows(quick: bool, rounds: int) -> list[Row]:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.keras.utils.set_random_seed(0)  # the conv block's weights: same model in every run
    rng = np.random.RandomState(0)
    cases = [("keras digits-cnn bs32", trained_bn_keras(refmodels.build_keras_r1()), (32, 16, 16, 1)),
             ("keras conv block bs8 32²", trained_bn_keras(keras_block()), (8, 32, 32, 16))]
    return [row for name, model, shape in cases
            for row in tensorflow_case(name, model, rng.rand(*shape).astype("float32"), rounds,
                                       5 if quick else 10)]


def tensorflow_case(name: str, model: Any, held_out: np.ndarray, rounds: int,
                    iters: int) -> list[Row]:
    import tensorflow as tf
    from tensorflow.python.tools import optimize_for_inference_lib

    import tunekit
    from tunekit.adaptors.tensorflow.graph_optimization.frozen_graph import FrozenGraph, freeze

    frozen = freeze(model)
    tool = FrozenGraph(optimize_for_inference_lib.optimize_for_inference(
        frozen.graph_def, frozen.inputs, frozen.outputs, tf.float32.as_datatype_enum),
        frozen.inputs, frozen.outputs)
    fp32 = tunekit.optimize_graph(model, ("fp32",)).model
    bf16 = tunekit.optimize_graph(model, ("bf16", "fp32")).model
    function = tf.function(lambda t: model(t, training=False))
    constant = tf.constant(held_out)
    reference = model(held_out, training=False).numpy()
    errors = {TOOL: rel_error(tool(held_out), reference),
              FP32: rel_error(fp32(held_out), reference),
              BF16: rel_error(bf16(held_out), reference)}
    graphs = {TOOL: tool.function(), FP32: fp32.function(), BF16: bf16.function()}
    variants = {FUNCTION: lambda: function(constant),
                **{label: (lambda f=f: f(constant)) for label, f in graphs.items()}}
    times = timed(variants, rounds, iters)
    return [(name, v, t, errors.get(v)) for v, t in times.items()]


def table(rows: list[Row]) -> str:
    lines = ["| model | variant | latency ms | × baseline | × framework optimizer | rel. error |",
             "|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r[0] for r in rows):
        group = [r for r in rows if r[0] == model]
        base, peer = group[0][2], group[1][2]
        for _, variant, seconds, error in group:
            shown = "—" if error is None else f"{error:.1e}"
            lines.append(f"| {model} | {variant} | {seconds * 1e3:.2f} | {base / seconds:.2f}× | "
                         f"{peer / seconds:.2f}× | {shown} |")
    return "\n".join(lines)


def checks(rows: list[Row]) -> list[str]:
    """The checks per model: FP32 at least as fast as the framework's optimizer (a tie within
    the timing noise is shown as such), bf16 faster than tunekit's FP32, FP32 outputs within
    1e-4 relative, bf16 outputs within :data:`BF16_ERROR` relative."""
    lines = []
    for model in dict.fromkeys(r[0] for r in rows):
        group = {variant: (seconds, error) for m, variant, seconds, error in rows if m == model}
        peer = JIT if JIT in group else TOOL
        (fp32, error), (bf16, bf16_error) = group[FP32], group[BF16]
        ratio = group[peer][0] / fp32
        lines += [_fp32_check(model, group, COMPILE)] if COMPILE in group else []
        lines += [(_check(ratio >= 1, f"{model}: tunekit fp32 {ratio:.3f}× of {peer}")
                   if not TIE <= ratio < 1 else f"TIE   {model}: tunekit fp32 {ratio:.3f}× of "
                   f"{peer} (within the ±{1 - TIE:.0%} run-to-run noise of these medians)"),
                  _check(fp32 / bf16 > 1, f"{model}: bf16 AMP {fp32 / bf16:.2f}× over tunekit "
                         f"fp32 ({next(iter(group.values()))[0] / bf16:.2f}× over the baseline)"),
                  _check(error is not None and error <= 1e-4, f"{model}: tunekit fp32 output "
                         f"error {error:.1e} relative on held-out inputs (≤ 1e-4)"),
                  _check(bf16_error is not None and bf16_error <= BF16_ERROR,
                         f"{model}: tunekit bf16 output error {bf16_error:.1e} relative on "
                         f"held-out inputs (≤ {BF16_ERROR:.0e})")]
    return lines


def _fp32_check(model: str, group: dict[str, tuple[float, Any]], peer: str) -> str:
    """tunekit's FP32 result against ``peer``: PASS at least as fast, TIE within the noise."""
    ratio = group[peer][0] / group[FP32][0]
    text = f"{model}: tunekit fp32 {ratio:.3f}× of {peer}"
    if TIE <= ratio < 1:
        return f"TIE   {text} (within the ±{1 - TIE:.0%} run-to-run noise of these medians)"
    return _check(ratio >= 1, text)


def _check(passed: bool, text: str) -> str:
    return f"{'PASS' if passed else 'FAIL'}  {text}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and layers")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", choices=("pytorch", "tensorflow"), default=None,
                        help="one framework's half of the run")
    args = parser.parse_args()
    rounds = args.rounds or (7 if args.quick else 21)
    start, load = time.time(), os.getloadavg()
    rows = [row for name, half in (("pytorch", pytorch_rows), ("tensorflow", tensorflow_rows))
            if args.only in (None, name) for row in half(args.quick, rounds)]
    print(table(rows))
    print("× baseline: speed-up over eager FP32 / tf.function; × framework optimizer: over "
          "torch.jit freeze+optimize_for_inference / TF's optimize_for_inference tool "
          "(≥ 1 means tunekit is at least as fast). rel. error: FP32 rows must be ≤ 1e-4.")
    verdicts = checks(rows)
    print("\n".join(verdicts))
    print(f"load average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
          f"{time.time() - start:.0f} s; {os.cpu_count()} CPUs")
    return 1 if any(line.startswith("FAIL") for line in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
