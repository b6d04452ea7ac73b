"""Graph optimization benchmark: tunekit's FP32 passes and bf16 AMP against the frameworks' own
inference optimizers, on the same models in one run.

    /work/devenv/bin/python benchmarks/graph_optimize.py [--quick]

PyTorch (R2 ResNet-18-like, R3 BERT-like from ../shared/peers/refwork.py): eager FP32 (baseline),
``torch.jit.freeze`` + ``torch.jit.optimize_for_inference``, tunekit FP32, tunekit bf16 (every
Conv/Linear). TensorFlow (the Keras digits CNN twin and a wider conv block): ``tf.function``
(baseline), TF's ``optimize_for_inference`` tool on the frozen graph, tunekit FP32 and bf16.
Latency is the median of interleaved rounds (the machine is shared); outputs of FP32 variants are
checked against the original on held-out inputs (max error relative to the output scale).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "peers"))
import refwork  # noqa: E402

Row = tuple[str, str, float, float | None]


def timed(variants: dict[str, Callable[[], Any]], rounds: int, iters: int) -> dict[str, float]:
    """Median seconds per call of each variant, rounds interleaved so load hits all alike."""
    for fn in variants.values():
        fn(), fn()
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


def pytorch_rows(quick: bool, rounds: int) -> list[Row]:
    import torch

    import tunekit

    torch.set_num_threads(2)
    cases = [("R2 resnet18-like bs4 128²", refwork.build_r2(),
              lambda seed: torch.randn(4, 3, 128, 128, generator=torch.Generator().manual_seed(seed))),
             ("R3 bert-like bs8 seq128", refwork.build_r3(layers=2 if quick else 4),
              lambda seed: refwork.r3_input(8, seed=seed))]
    rows: list[Row] = []
    for name, model, make in cases:
        example, held_out = make(0), make(123)
        with torch.inference_mode():
            jit = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example)))
        fp32 = tunekit.optimize_graph(model, ("fp32",)).model
        bf16 = tunekit.optimize_graph(model, ("bf16",), example_data=[(example, None)]).model
        with torch.inference_mode():
            reference = model(held_out)
            errors = {"torch.jit freeze+optimize_for_inference": rel_error(jit(held_out), reference),
                      "tunekit fp32": rel_error(fp32(held_out), reference),
                      "tunekit bf16 (AMP)": rel_error(bf16(held_out).float(), reference)}
            variants = {"eager fp32 (baseline)": lambda: model(held_out),
                        "torch.jit freeze+optimize_for_inference": lambda: jit(held_out),
                        "tunekit fp32": lambda: fp32(held_out),
                        "tunekit bf16 (AMP)": lambda: bf16(held_out)}
            times = timed(variants, rounds, 2 if quick else 4)
        rows += [(name, v, t, errors.get(v)) for v, t in times.items()]
    return rows


def tensorflow_rows(quick: bool, rounds: int) -> list[Row]:
    import tensorflow as tf
    from tensorflow.python.tools import optimize_for_inference_lib

    from tunekit.graph.tensorflow.graph import FrozenGraph, freeze
    from tunekit.graph.tensorflow.optimize import optimize

    tf.config.threading.set_intra_op_parallelism_threads(2)
    rng = np.random.RandomState(0)
    inputs = tf.keras.Input((32, 32, 16))
    x = inputs
    for width in (32, 64, 64):
        x = tf.keras.layers.Conv2D(width, 3, padding="same")(x)
        x = tf.keras.layers.BatchNormalization()(x)
        x = tf.keras.layers.ReLU()(x)
    block = tf.keras.Model(inputs, tf.keras.layers.Dense(10)(
        tf.keras.layers.GlobalAveragePooling2D()(x)))
    cases = [("keras digits-cnn bs32", refwork.build_keras_r1(),
              rng.rand(32, 16, 16, 1).astype("float32")),
             ("keras conv block bs8 32²", block, rng.rand(8, 32, 32, 16).astype("float32"))]
    rows: list[Row] = []
    for name, model, batch in cases:
        frozen = freeze(model)
        tool = FrozenGraph(optimize_for_inference_lib.optimize_for_inference(
            frozen.graph_def, frozen.inputs, frozen.outputs, tf.float32.as_datatype_enum),
            frozen.inputs, frozen.outputs)
        fp32 = optimize(model, ("fp32",), None).model
        bf16 = optimize(model, ("bf16", "fp32"), None).model
        function = tf.function(lambda t: model(t, training=False))
        constant = tf.constant(batch)
        reference = model(batch, training=False).numpy()
        errors = {"TF optimize_for_inference tool": rel_error(tool(batch), reference),
                  "tunekit fp32": rel_error(fp32(batch), reference),
                  "tunekit bf16 (AMP)": rel_error(bf16(batch), reference)}
        calls = {label: (lambda g=graph: g.function()(constant)) for label, graph in
                 (("TF optimize_for_inference tool", tool), ("tunekit fp32", fp32),
                  ("tunekit bf16 (AMP)", bf16))}
        variants = {"tf.function fp32 (baseline)": lambda: function(constant), **calls}
        times = timed(variants, rounds, 5 if quick else 20)
        rows += [(name, v, t, errors.get(v)) for v, t in times.items()]
    return rows


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and layers")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    rows = pytorch_rows(args.quick, rounds) + tensorflow_rows(args.quick, rounds)
    print(table(rows))
    print("× baseline: speed-up over eager FP32 / tf.function; × framework optimizer: over "
          "torch.jit freeze+optimize_for_inference / TF's optimize_for_inference tool "
          "(≥ 1 means tunekit is at least as fast). rel. error: FP32 rows must be ≤ 1e-4.")


if __name__ == "__main__":
    main()
