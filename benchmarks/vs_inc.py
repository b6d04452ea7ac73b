#!/usr/bin/env python
"""tunekit vs Intel Neural Compressor 2.6 (basic strategies, absolute 0.0 loss), same run.

    python benchmarks/vs_inc.py [--workloads digits,resnet_digits] [--no-peer] [--keep DIR]

Workloads (both need one op to fall back; default int8 misses the goal):

- ``digits``: ``examples/digits_pytorch/fallback.yaml`` (peer: ``inc_workload.py digits_half``);
- ``resnet_digits``: a ResNet-like CNN on 32×32 digits (``benchmarks/workloads``; peer:
  ``inc_workload.py resnet_digits``). Trained once and cached (minutes on a busy
  2-core machine; seconds of the table do not include it).

Per workload: set up or reuse the peer venv (:mod:`peers`), run INC, then run
``tunekit tune`` in a fresh workspace, rebuild tunekit's model with ``tunekit.load`` and time it
against FP32 eager (interleaved rounds, medians, noisy rounds dropped). The table gives
evaluations, wall time, final accuracy, int8 speedup at batch 32 and the ratios tunekit / INC,
with the share of CPU other processes used during each run (runs are not comparable when it is
high). Below it, tunekit's per-trial overhead: trial time outside quantize + evaluate (+ the
objective measurement of accepted candidates), from the trials' ``time.*`` details; then each
check as PASS or FAIL (exit status 1 when one fails). ``--no-peer`` runs tunekit alone: no INC
row, no ratio, no INC check.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fallback_vs_inc as base

HERE = Path(__file__).resolve().parent
#: workload → its tunekit config, the workload module INC runs, the ops that must fall back
WORKLOADS: dict[str, dict[str, Any]] = {
    "digits": {"config": base.EXAMPLE / "fallback.yaml", "peer": "digits_half",
               "fallback": {"conv1"}},
    "resnet_digits": {"config": HERE / "workloads" / "resnet_digits.yaml",
                      "peer": "resnet_digits", "fallback": None},
}


def measure(name: str, workspace: Path) -> dict[str, Any]:
    if name == "digits":
        return base.measure_tuned(workspace)
    import torch

    from tunekit.api import load

    sys.path.insert(0, str(HERE / "workloads"))
    import resnet_digits as w

    fp32 = w.load_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tuned = load(workspace, fp32)
    x = torch.from_numpy(w.digits32()["x_eval"][:32])
    with torch.inference_mode():
        median = base.time_interleaved({"fp32": fp32, "tuned": tuned}, x, 8)
    return {"final_acc": w.top1(tuned),
            "latency": {"bs32": {"speedup": median["fp32"] / median["tuned"]}}}


def trial_overhead(workspace: Path) -> dict[str, float]:
    """Sums over the trials of the history: total time, quantize, evaluate, measure, rest."""
    from tunekit.store import Store

    stored = Store(str(workspace / "history.log"), "tunekit", "maximize").load()
    sums = {"trials": 0.0, "total_s": 0.0, "quantize_s": 0.0, "evaluate_s": 0.0,
            "measure_s": 0.0}
    for trial in stored.trials:
        sums["trials"] += 1
        sums["total_s"] += trial.duration_s
        for key in ("quantize_s", "evaluate_s", "measure_s"):
            sums[key] += trial.details.get(f"time.{key}", 0.0)
    sums["overhead_s"] = sums["total_s"] - sums["quantize_s"] - sums["evaluate_s"] \
        - sums["measure_s"]
    return sums


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="digits,resnet_digits")
    parser.add_argument("--no-peer", action="store_true", help="tunekit only")
    parser.add_argument("--keep", type=Path, help="keep the workspaces under this folder")
    args = parser.parse_args(argv)
    names = [n for n in args.workloads.split(",") if n]
    unknown = set(names) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; known: {', '.join(WORKLOADS)}")
    started = time.perf_counter()
    python = None if args.no_peer else base.setup_peer()
    out, verdicts = [], []
    with tempfile.TemporaryDirectory(prefix="tunekit-vs-inc-") as scratch:
        root = (args.keep or Path(scratch)).resolve()
        for name in names:
            peer = base.run_peer(python, Path(scratch), WORKLOADS[name]["peer"]) \
                if python else None
            workspace = root / f"workspace_{name}"
            workspace.parent.mkdir(parents=True, exist_ok=True)
            ours = base.run_tunekit(workspace, WORKLOADS[name]["config"])
            tuned = measure(name, workspace) if ours is not None else None
            cost = trial_overhead(workspace) if ours is not None else None
            verdicts += [f"{v[:6]}{name}: {v[6:]}" for v in base.checks(
                peer, ours, tuned, WORKLOADS[name]["fallback"], with_peer=not args.no_peer)]
            out.append((name, peer, ours, tuned, cost))
    for name, peer, ours, tuned, cost in out:
        print(f"\n### {name}\n")
        print(base.table(peer, ours, tuned))
        if (line := base.benchmark_line(tuned)) is not None:
            print(line)
        loads = [f"INC run {base._share(peer.get('foreign_cpu'))}" if peer else None,
                 f"tunekit run {base._share(ours.get('foreign_cpu'))}" if ours else None]
        print("CPU used by other processes during the runs: "
              + (", ".join(x for x in loads if x) or "n/a"))
        if cost and cost["total_s"]:
            print(f"tunekit trials: {cost['trials']:.0f}, {cost['total_s']:.2f} s = quantize "
                  f"{cost['quantize_s']:.2f} + evaluate {cost['evaluate_s']:.2f} + objective "
                  f"{cost['measure_s']:.2f} + overhead {cost['overhead_s']:.3f} s "
                  f"({cost['overhead_s'] / cost['total_s']:.1%} of trial time)")
    print("\n" + "\n".join(verdicts))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if any(v.startswith("FAIL") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
