#!/usr/bin/env python
"""Intel Neural Compressor 2.6's accuracy-driven bf16 mixed precision on one case of
``benchmarks/workloads/amp_cases.py``; prints one JSON line.

Runs in the peer environment (``~/.cache/tunekit-peers/venv-inc2``), started by
``amp_vs_inc.py``:  venv-inc2/bin/python benchmarks/inc_amp.py resnet_digits
Counted: ``n_evals`` (eval_func calls, the FP32 baseline included), ``tune_wall_s``
(``mix_precision.fit``), ``final_metric``, ``bf16_ops`` (the modules INC wrapped in bf16) and the
speedup of INC's model over FP32 eager at the case's batch (``timing.interleaved``).
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "workloads"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--workspace", default="/tmp/tunekit-inc-amp")
    a = ap.parse_args()
    import amp_cases
    import neural_compressor
    import refmodels
    import timing
    from neural_compressor import mix_precision, set_workspace
    from neural_compressor.config import AccuracyCriterion, MixedPrecisionConfig, TuningCriterion

    case = amp_cases.CASES[a.case]
    set_workspace(os.path.join(a.workspace, f"{a.case}_{os.getpid()}"))
    fp32 = case.model()
    evals = []

    def eval_func(model):
        evals.append(case.metric(model))
        return evals[-1]

    criterion, loss = case.goal
    conf = MixedPrecisionConfig(
        tuning_criterion=TuningCriterion(max_trials=200, timeout=0),
        accuracy_criterion=AccuracyCriterion(criterion=criterion, tolerable_loss=loss,
                                             higher_is_better=True))
    meter = refmodels.ContentionMeter().start()
    start = time.perf_counter()
    tuned = mix_precision.fit(fp32, conf, eval_func=eval_func)
    wall = time.perf_counter() - start
    res = {"tool": "neural-compressor", "inc_version": neural_compressor.__version__,
           "case": a.case, "n_evals": len(evals), "tune_wall_s": round(wall, 2),
           "met": tuned is not None, "foreign_cpu": meter.stop()["foreign_cpu_frac"],
           "baseline": evals[0] if evals else None}
    if tuned is not None:
        model = tuned.model.eval()
        res["final_metric"] = case.metric(model)
        res["bf16_ops"] = sorted(name for name, module in model.named_modules()
                                 if type(module).__name__ == "BF16ModuleWrapper")
        times = timing.interleaved({"fp32": fp32, "tuned": model}, case.batch())
        res["speedup"] = round(times["fp32"] / times["tuned"], 3)
        res["tuned_ms"] = round(times["tuned"] * 1e3, 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
