#!/usr/bin/env python
"""Run Intel Neural Compressor 2.6 (basic strategy, absolute 0.0 loss) on a workload module of
``benchmarks/workloads`` (``digits_half``, ``resnet_digits``) and print one JSON line.

Runs in the peer environment (``~/.cache/tunekit-peers/venv-inc2``), started by ``vs_inc.py``:
    venv-inc2/bin/python benchmarks/inc_workload.py resnet_digits
Counted: ``n_evals`` (eval_func calls, FP32 baseline included), ``tune_wall_s`` (``fit()``),
``final_acc``, ``fallback_ops`` and the int8 speedup over FP32 eager (interleaved rounds,
medians), and the share of CPU other processes used (``tune_contention``).
"""
import argparse
import importlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "workloads"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("--workspace", default="/tmp/tunekit-inc-workload")
    a = ap.parse_args()
    import neural_compressor
    from neural_compressor import set_workspace
    from neural_compressor.config import AccuracyCriterion, PostTrainingQuantConfig, TuningCriterion
    from neural_compressor.quantization import fit
    import refmodels
    import timing

    w = importlib.import_module(a.workload)
    set_workspace(os.path.join(a.workspace, f"{a.workload}_{os.getpid()}"))
    fp32 = w.load_model()
    evals = []

    def eval_func(model):
        evals.append(w.top1(model))
        return evals[-1]

    class DL:
        def __init__(self, batches):
            self.batches, self.batch_size = batches, len(batches[0][1])

        def __iter__(self):
            return iter(self.batches)

    conf = PostTrainingQuantConfig(
        approach="static", backend="default", quant_level=1, calibration_sampling_size=[100],
        tuning_criterion=TuningCriterion(strategy="basic", max_trials=200, timeout=0),
        accuracy_criterion=AccuracyCriterion(criterion="absolute", tolerable_loss=0.0,
                                             higher_is_better=True))
    meter = refmodels.ContentionMeter().start()
    start = time.perf_counter()
    q = fit(fp32, conf, calib_dataloader=DL(w.calib_loader_half()), eval_func=eval_func)
    wall = time.perf_counter() - start
    res = {"tool": "neural-compressor", "inc_version": neural_compressor.__version__,
           "workload": a.workload, "n_evals": len(evals), "tune_wall_s": round(wall, 2),
           "met": q is not None, "tune_contention": meter.stop()}
    res["foreign_cpu"] = res["tune_contention"]["foreign_cpu_frac"]
    if q is not None:
        qm = q.model.eval()
        res["final_acc"] = round(w.top1(qm), 6)
        cfg = getattr(q, "q_config", None) or {}
        ops = {}
        for (name, typ), v in (cfg.get("op") or {}).items():
            ops[name] = (v.get("weight") or {}).get("dtype") or (v.get("activation") or {}).get("dtype")
        for k in cfg.get("bf16_ops_list", []) or []:
            ops[k[0]] = "bf16"
        res["fallback_ops"] = {k: v for k, v in ops.items() if v not in ("int8", "uint8")}
        times = timing.interleaved({"fp32": fp32, "tuned": qm}, w.timed_batch())
        f, t = times["fp32"], times["tuned"]
        res["latency"] = {"bs32": {"fp32_ms": round(f * 1e3, 3), "tuned_ms": round(t * 1e3, 3),
                                   "speedup": round(f / t, 3)}}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
