#!/usr/bin/env python
"""Intel Neural Compressor 2.6 side of ``fallback_culprits.py``: tune one saved workload model
with INC's basic strategy and print one JSON line (INC's own log goes to stderr).

Run by ``fallback_culprits.py`` in INC's own environment (torch 2.13 CPU, neural-compressor 2.6):

    VENV/bin/python benchmarks/culprit_inc.py MODEL.pt --loss 0.01

``quant_level=1`` makes INC run the strategy it is given (its default, ``auto``, ignores it).
Counted: ``evaluations`` (calls of the evaluation function, the FP32 baseline included),
``wall_s`` (``fit()``: baseline, calibration, trials), ``final_acc`` (the returned model on the
evaluation split), ``fallback_ops`` (ops INC left out of int8), ``speedup`` (FP32 time / INC's
model time on the evaluation inputs, interleaved in this process).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from culprit_workloads import batches, digits, speedup, top1  # noqa: E402


class Loader:
    """The iterable of ``(inputs, labels)`` with a ``batch_size`` attribute that INC expects."""

    def __init__(self, x, y, batch_size: int) -> None:
        self.data, self.batch_size = batches(x, y, batch_size), batch_size

    def __iter__(self):
        return iter(self.data)


def fallback_ops(q_model) -> dict[str, str]:
    """Ops of INC's result not in int8, from its ``q_config`` (bf16 list and per-op dtypes)."""
    config = getattr(q_model, "q_config", None) or {}
    ops = {}
    for (name, _), value in (config.get("op") or {}).items():
        dtype = (value.get("weight") or {}).get("dtype") or (value.get("activation") or {}).get(
            "dtype")
        if dtype not in ("int8", "uint8"):
            ops[name] = str(dtype)
    for name, _ in config.get("bf16_ops_list", []) or []:
        ops[name] = "bf16"
    return ops


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--loss", type=float, default=0.01, help="relative tolerable loss")
    parser.add_argument("--max-trials", type=int, default=500)
    parser.add_argument("--workspace", default="nc_workspace")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from neural_compressor import set_workspace
    from neural_compressor.config import (AccuracyCriterion, PostTrainingQuantConfig,
                                          TuningCriterion)
    from neural_compressor.quantization import fit

    set_workspace(args.workspace)
    data = digits()
    model = torch.load(args.model, weights_only=False).eval()
    evaluations = []

    def eval_func(candidate) -> float:
        evaluations.append(top1(candidate, data))
        return evaluations[-1]

    config = PostTrainingQuantConfig(
        approach="static", quant_level=1, calibration_sampling_size=[100],
        tuning_criterion=TuningCriterion(strategy="basic", max_trials=args.max_trials),
        accuracy_criterion=AccuracyCriterion(criterion="relative", tolerable_loss=args.loss))
    start = time.perf_counter()
    q_model = fit(model, config, calib_dataloader=Loader(data["x_train"][:100],
                                                         data["y_train"][:100], 10),
                  eval_func=eval_func)
    result = {"evaluations": len(evaluations), "wall_s": round(time.perf_counter() - start, 2),
              "met": q_model is not None}
    if q_model is not None:
        tuned = q_model.model.eval()
        result.update(final_acc=top1(tuned, data), fallback_ops=fallback_ops(q_model),
                      speedup=speedup(model, tuned, data))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
