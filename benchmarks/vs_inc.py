#!/usr/bin/env python
"""tunekit vs Intel Neural Compressor 2.6 (basic strategies, absolute 0.0 loss), same run.

    python benchmarks/vs_inc.py [--workloads digits,resnet_digits] [--no-peer] [--keep DIR]

Workloads (both need one op to fall back; default int8 misses the goal):

- ``digits``: R1, ``examples/digits_pytorch/fallback.yaml`` (peer: ``shared/peers/run_inc_peer.py``);
- ``resnet_digits``: a ResNet-like CNN on 32×32 digits (``benchmarks/workloads``; peer:
  ``benchmarks/inc_workload.py`` in the peer's venv). Trained once and cached (minutes on a busy
  2-core machine; seconds of the table do not include it).

Per workload: set up or reuse the peer venv (``fallback_vs_inc.setup_peer``), run INC, then run
``tunekit tune`` in a fresh workspace, rebuild tunekit's model with ``tunekit.load`` and time it
against FP32 eager (interleaved rounds, medians, noisy rounds dropped). The table gives
evaluations, wall time, final accuracy, int8 speedup at batch 32 and the ratios tunekit / INC,
with the share of CPU other processes used during each run (runs are not comparable when it is
high). Below it, tunekit's per-trial overhead: trial time outside quantize + evaluate (+ the
objective measurement of accepted candidates), from the trials' ``time.*`` details.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fallback_vs_inc as base

HERE = Path(__file__).resolve().parent
WORKLOADS = {
    "digits": {"config": base.EXAMPLE / "fallback.yaml", "peer": None},
    "resnet_digits": {"config": HERE / "workloads" / "resnet_digits.yaml",
                      "peer": HERE / "inc_workload.py"},
}


def run_peer(name: str, python: Path, log_dir: Path) -> dict[str, Any] | None:
    spec = WORKLOADS[name]
    if spec["peer"] is None:
        return base.run_peer(python, log_dir)
    print(f"peer: tuning {name} with INC 2.6 (basic strategy) ...", flush=True)
    log = log_dir / f"inc_{name}.log"
    with log.open("w") as stderr:
        done = subprocess.run([str(python), str(spec["peer"]), name], stdout=subprocess.PIPE,
                              stderr=stderr, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"peer: run failed (exit {done.returncode}); log {log}")
        return None
    return json.loads(lines[-1])


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
    from tunekit.history import Store

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
    parser.add_argument("--no-peer", action="store_true", help="tunekit only (digits: INC's "
                        "recorded figures)")
    parser.add_argument("--keep", type=Path, help="keep the workspaces under this folder")
    args = parser.parse_args(argv)
    names = [n for n in args.workloads.split(",") if n]
    unknown = set(names) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; known: {', '.join(WORKLOADS)}")
    started = time.perf_counter()
    python = None if args.no_peer else base.setup_peer()
    out, ok = [], True
    with tempfile.TemporaryDirectory(prefix="tunekit-vs-inc-") as scratch:
        root = (args.keep or Path(scratch)).resolve()
        for name in names:
            peer = run_peer(name, python, Path(scratch)) if python else None
            if peer is None:
                peer = base.recorded_peer() if name == "digits" else {"recorded": True}
            workspace = root / f"workspace_{name}"
            workspace.parent.mkdir(parents=True, exist_ok=True)
            ours = base.run_tunekit(workspace, WORKLOADS[name]["config"])
            tuned = measure(name, workspace) if ours is not None else None
            cost = trial_overhead(workspace) if ours is not None else None
            ok = ok and ours is not None and ours["met"]
            out.append((name, peer, ours, tuned, cost))
    for name, peer, ours, tuned, cost in out:
        print(f"\n### {name}\n")
        print(base.table(peer, ours, tuned))
        if (line := base.benchmark_line(tuned)) is not None:
            print(line)
        loads = [f"INC run {base._share(peer.get('foreign_cpu'))}"
                 if not peer.get("recorded") else None,
                 f"tunekit run {base._share(ours.get('foreign_cpu'))}" if ours else None]
        print("CPU used by other processes during the runs: "
              + (", ".join(x for x in loads if x) or "n/a"))
        if cost and cost["total_s"]:
            print(f"tunekit trials: {cost['trials']:.0f}, {cost['total_s']:.2f} s = quantize "
                  f"{cost['quantize_s']:.2f} + evaluate {cost['evaluate_s']:.2f} + objective "
                  f"{cost['measure_s']:.2f} + overhead {cost['overhead_s']:.3f} s "
                  f"({cost['overhead_s'] / cost['total_s']:.1%} of trial time)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
