#!/usr/bin/env python
"""The tuned Keras digits CNN against its FP32 Keras model, measured in one run.

    python benchmarks/keras_int8_vs_fp32.py [--batch-size 32] [--rounds 5]

Builds, in one process, the FP32 Keras model (called through ``tf.function``: TensorFlow's
graph mode with Grappler and oneDNN fusions), Grappler's oneDNN bf16 auto-mixed-precision of it,
the adaptor's all-fp32 TFLite model, all-bf16 Keras clone, default int8 model and the fallback
case's model (``conv1`` → fp32), then times them in interleaved rounds on the same batch. Prints
one markdown table: median latency, speed-up over FP32 Keras, top-1 and build time.

Part of any speed-up over FP32 Keras is the runtime's (TFLite against TensorFlow), so the checks
compare within one runtime. Each prints PASS or FAIL (exit status 1 when one fails): default
int8 faster than fp32 TFLite; default int8's top-1 within 1% of FP32 Keras's (the goal of
``examples/digits_keras/config.yaml``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_keras"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per round")
    args = parser.parse_args()
    sys.path.insert(0, str(EXAMPLE))
    import data as example_data
    import model as example_model
    import tensorflow as tf

    from tunekit.adaptors.tensorflow import TensorFlowAdaptor

    keras = example_model.load_model()
    adaptor = TensorFlowAdaptor(bf16=True)
    calib, evaluation = example_data.calib_loader(), example_data.eval_loader()
    space = adaptor.capabilities(keras)
    conv1 = next(op for op in space.ops if op.name == "conv1")
    variants: dict[str, Any] = {"fp32 Keras (tf.function)": keras}
    builds: dict[str, float] = {}
    for name, config in [("fp32 TFLite", space.uniform("fp32")),
                         ("bf16 Keras clone (every op)", space.uniform("bf16")),
                         ("int8 TFLite (default config)", space.default()),
                         ("int8, conv1 → fp32", space.default().with_op(
                             conv1, space.option(conv1, "fp32")))]:
        started = time.perf_counter()
        variants[name] = adaptor.quantize(keras, config, calib)
        builds[name] = time.perf_counter() - started
    runners: dict[str, Callable[[np.ndarray], Any]] = {
        name: (lambda x, m=model: adaptor.run_batch(m, x)) for name, model in variants.items()}
    amp = _grappler_bf16(tf, keras)
    runners["bf16 Grappler AMP (oneDNN)"] = amp
    x = np.concatenate([b[0] for b in evaluation])[: args.batch_size]
    times = _interleaved(runners, x, args.rounds, args.calls)
    base = statistics.median(times["fp32 Keras (tf.function)"])
    print(f"Keras digits CNN, batch {args.batch_size}, {args.rounds}×{args.calls} calls, "
          f"TF {tf.__version__}\n")
    print("| variant | median ms | speed-up vs FP32 Keras | top-1 | build s |")
    print("|---|---|---|---|---|")
    medians, accuracies = {}, {}
    for name in runners:
        medians[name] = median = statistics.median(times[name])
        accuracies[name] = accuracy = _top1(adaptor, variants[name], evaluation) \
            if name in variants else _top1_fn(amp, evaluation)
        build = f"{builds[name]:.2f}" if name in builds else "—"
        print(f"| {name} | {median * 1e3:.3f} | {base / median:.2f}× | {accuracy:.4f} | {build} |")
    runtime = medians["fp32 Keras (tf.function)"] / medians["fp32 TFLite"]
    int8 = medians["fp32 TFLite"] / medians["int8 TFLite (default config)"]
    print(f"\nthe runtime switch alone (fp32 TFLite vs fp32 Keras): {runtime:.2f}×")
    verdicts = [_check(int8 > 1, f"default int8 {int8:.2f}× fp32 TFLite (same runtime; > 1)"),
                _check(accuracies["int8 TFLite (default config)"]
                       >= 0.99 * accuracies["fp32 Keras (tf.function)"],
                       f"default int8 top-1 {accuracies['int8 TFLite (default config)']:.4f} "
                       f"within 1% of FP32 Keras {accuracies['fp32 Keras (tf.function)']:.4f} "
                       "(the example's goal)")]
    print("\n".join(verdicts))
    return 1 if any(v.startswith("FAIL") for v in verdicts) else 0


def _check(passed: bool, text: str) -> str:
    return f"{'PASS' if passed else 'FAIL'}  {text}"


def _grappler_bf16(tf: Any, keras: Any) -> Callable[[np.ndarray], Any]:
    """Grappler's whole-graph oneDNN bf16 rewrite: the reference for per-op bf16."""
    tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    function = tf.function(lambda x: keras(x, training=False))
    function(tf.zeros([1, 16, 16, 1]))
    tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": False})
    return lambda x: function(tf.constant(x)).numpy()


def _interleaved(runners: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray, rounds: int,
                 calls: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        for _ in range(10):
            run(x)
    for _ in range(rounds):
        for name, run in runners.items():
            for _ in range(calls):
                started = time.perf_counter()
                run(x)
                times[name].append(time.perf_counter() - started)
    return times


def _top1(adaptor: Any, model: Any, evaluation: list) -> float:
    hits = [int((out.argmax(1) == y).sum()) for out, y in adaptor.predict(model, evaluation)]
    return sum(hits) / sum(len(y) for _, y in evaluation)


def _top1_fn(run: Callable[[np.ndarray], Any], evaluation: list) -> float:
    hits = [int((np.asarray(run(x)).argmax(1) == y).sum()) for x, y in evaluation]
    return sum(hits) / sum(len(y) for _, y in evaluation)


if __name__ == "__main__":
    sys.exit(main())
