#!/usr/bin/env python
"""tunekit vs Intel Neural Compressor 2.6 on the op-wise fallback case, in one run.

Workload: the digits CNN (examples/digits_pytorch, same cached weights for both tools)
calibrated on images at half intensity, with no accuracy loss allowed. Default int8 loses ~20
points; only returning conv1 to float recovers the FP32 top-1. Both tools use their basic
strategy.

    python benchmarks/fallback_vs_inc.py [--no-peer] [--workspace DIR]

1. builds or reuses the peer environment (:mod:`peers`: INC 2.6 in its own venv under
   ``$TUNEKIT_PEERS_OUT``); with ``--no-peer``, or when it cannot be built, there is no INC row
   and no ratio (nothing recorded stands in for a live figure);
2. runs the peer (``inc_workload.py digits_half``) in its own environment and reads its JSON
   line;
3. runs ``tunekit tune examples/digits_pytorch/fallback.yaml`` in a fresh workspace;
4. rebuilds tunekit's tuned model with ``tunekit.load`` and times it against FP32 eager in this
   process (interleaved rounds, medians), as the peer script times its own model;
5. prints one table with the ratios tunekit / INC, then each check as PASS or FAIL; the exit
   status is 1 when one fails (a missing peer makes its checks FAIL, not vanish).

Wall times include each tool's baseline evaluation, calibration and trials, not model training.
The machine may be shared: the share of CPU used by other processes during each run is printed
beside the table, because wall-time ratios mean little when it is high.
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

from tunekit.benchmark.load import CpuShare

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
EXAMPLE = REPO / "examples" / "digits_pytorch"
ROUNDS = 7
CALLS = {1: 40, 32: 10}  # calls per model per round, by batch size


# --------------------------------------------------------------------------- the peer


def setup_peer() -> Path | None:
    """The INC 2.6 venv's python, built first if needed; None (with a reason) if it cannot be."""
    return peers.python_of("inc2")


def run_peer(python: Path, log_dir: Path, workload: str = "digits_half") -> dict[str, Any] | None:
    """INC 2.6 basic on ``workload`` (a module of ``benchmarks/workloads``) in its own
    environment; its one JSON line, or None (with its log tail) when it fails."""
    print(f"peer: tuning {workload} with INC 2.6 (basic strategy) ...", flush=True)
    log = log_dir / f"inc_{workload}.log"
    with CpuShare().measure() as share, log.open("w") as stderr:
        done = subprocess.run([str(python), str(HERE / "inc_workload.py"), workload],
                              stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"peer: run failed (exit {done.returncode}); log {log}:\n"
              f"{_tail(log.read_text(errors='replace'))}")
        return None
    result = json.loads(lines[-1])
    result["foreign_cpu"] = share.foreign
    print(f"peer: {lines[-1]}")
    return result


# --------------------------------------------------------------------------- tunekit


def run_tunekit(workspace: Path, config: Path = EXAMPLE / "fallback.yaml") -> dict[str, Any] | None:
    """``tunekit tune CONFIG`` as a user runs it; result.json plus the process's load."""
    print(f"tunekit: tuning {config.relative_to(REPO)} (basic strategy) ...", flush=True)
    command = [sys.executable, "-c", "import sys; from tunekit.cli import main; sys.exit(main())",
               "tune", str(config), "--workspace", str(workspace)]
    with CpuShare().measure() as share:
        done = subprocess.run(command, cwd=workspace.parent)
    if done.returncode not in (0, 3):  # 0: goal met, 3: not met (best-so-far still saved)
        print(f"tunekit: tune failed (exit {done.returncode})")
        return None
    result = json.loads((workspace / "result.json").read_text(encoding="utf-8"))
    result["foreign_cpu"] = share.foreign
    return result


def load_example() -> tuple[Any, Any]:
    """The example's FP32 model and its evaluation split, imported from the example folder."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        import model as example  # examples/digits_pytorch/model.py
    finally:
        sys.path.remove(str(EXAMPLE))
    return example.load_model(), example.digits_data()


def time_interleaved(models: dict[str, Any], inputs: Any, calls: int) -> dict[str, float]:
    """Median call latency per PyTorch model on ``inputs``, timed by ``tunekit benchmark``'s own
    timer: models alternate every round so drifts in machine load hit all of them alike, and
    rounds in which other processes took more than 3 % of the CPU are dropped (keeping at least
    the two quietest)."""
    from tunekit import plugins
    from tunekit.benchmark.measure import measure
    from tunekit.config import BenchmarkSpec

    adaptor = plugins.create("tunekit.adaptors", "pytorch", {})
    spec = BenchmarkSpec(batch_sizes=(len(inputs),), warmup=10, iterations=calls, rounds=ROUNDS)
    return {f.model: f.median_s for f in measure(adaptor, models, [(inputs, None)], spec, None)}


def measure_tuned(workspace: Path) -> dict[str, Any]:
    """Top-1 and latency of tunekit's tuned model rebuilt from its workspace, vs FP32 eager.

    The latency is timed twice over. In this process on the peer's inputs
    (``torch.from_numpy`` of the image array, as ``inc_workload.py`` feeds its models), so INC
    and tunekit face the same FP32 baseline: with one channel, numpy's strides make that tensor
    look channels-last to oneDNN, whose FP32 convolutions then run ~1.6× faster than on a
    DataLoader-collated batch. And exactly as ``tunekit benchmark`` times it (the example's
    DataLoader batches, fresh processes), the figure to compare with that command."""
    import torch

    from tunekit.api import load

    fp32, data = load_example()
    with warnings.catch_warnings():  # torch's deprecation notices about quantized storages
        warnings.simplefilter("ignore", UserWarning)
        tuned = load(workspace, fp32)
    images, labels = torch.from_numpy(data.x_eval), torch.from_numpy(data.y_eval)
    out: dict[str, Any] = {"latency": {}}
    with torch.inference_mode():
        out["final_acc"] = int((tuned(images).argmax(1) == labels).sum()) / len(labels)
        for batch, calls in CALLS.items():
            median = time_interleaved({"fp32": fp32, "tuned": tuned}, images[:batch], calls)
            out["latency"][f"bs{batch}"] = {
                "fp32_ms": median["fp32"] * 1e3, "tuned_ms": median["tuned"] * 1e3,
                "speedup": median["fp32"] / median["tuned"]}
    out["tunekit_benchmark"] = tunekit_benchmark(workspace)
    return out


def tunekit_benchmark(workspace: Path) -> list[dict[str, Any]]:
    """``tunekit benchmark examples/digits_pytorch/fallback.yaml --model WORKSPACE``'s rows."""
    from tunekit.benchmark import run

    print("tunekit: timing the tuned model as `tunekit benchmark` does ...", flush=True)
    return run(EXAMPLE / "fallback.yaml", [], workspace).rows()


def benchmark_line(tuned: dict[str, Any] | None) -> str | None:
    """The speedups ``tunekit benchmark`` reports on the same workspace, with their range."""
    rows = (tuned or {}).get("tunekit_benchmark")
    if not rows:
        return None
    cells = [f"bs{row['batch_size']} {row['speedup']:.2f}× (runs "
             f"{row['speedup_range'][0]:.2f}–{row['speedup_range'][1]:.2f})" for row in rows]
    return ("`tunekit benchmark` on the same workspace (DataLoader batches, fresh processes): "
            + ", ".join(cells))


# --------------------------------------------------------------------------- the table


def row(tool: str, met: Any, evaluations: Any, wall: Any, acc: Any, fell_back: Any,
        speedup32: Any, speedup1: Any) -> list[str]:
    def show(value: Any, fmt: str) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return format(value, fmt) if fmt else str(value)

    return [tool, show(met, ""), show(evaluations, ""), show(wall, ".1f"), show(acc, ".4f"),
            show(fell_back, ""), show(speedup32, ".2f") + ("×" if speedup32 else ""),
            show(speedup1, ".2f") + ("×" if speedup1 else "")]


def fell_back(ops: dict[str, str] | None) -> str | None:
    if ops is None:
        return None
    return ", ".join(f"{name.split(':')[0]} → {precision}" for name, precision in ops.items()) \
        or "none"


def speedup(result: dict[str, Any] | None, batch: str) -> float | None:
    return ((result or {}).get("latency") or {}).get(batch, {}).get("speedup")


def table(peer: dict[str, Any] | None, ours: dict[str, Any] | None,
          tuned: dict[str, Any] | None) -> str:
    """INC's row (when it ran), tunekit's, and their ratios: every figure measured in this run."""
    rows = []
    peer_cells = None
    if peer is not None:
        peer_cells = (peer.get("met"), peer.get("n_evals"), peer.get("tune_wall_s"),
                      peer.get("final_acc"), fell_back(peer.get("fallback_ops")),
                      speedup(peer, "bs32"), speedup(peer, "bs1"))
        rows.append(row("INC 2.6 basic", *peer_cells))
    if ours is not None:
        our_cells = (ours["met"], ours["evaluations"], ours["wall_s"],
                     (tuned or {}).get("final_acc", ours.get("best_metric")),
                     fell_back(ours.get("fallback_ops")), speedup(tuned, "bs32"),
                     speedup(tuned, "bs1"))
        rows.append(row("tunekit basic", *our_cells))
        if peer_cells is not None:
            ratios = [_ratio(a, b) for a, b in zip(our_cells[1:], peer_cells[1:])]
            rows.append(["tunekit / INC", "",
                         *("—" if r is None else f"{r:.2f}" for r in ratios)])
    header = ["tool", "met", "evaluations", "wall s", "final acc", "fell back",
              "int8 speedup bs32", "bs1"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_line(header, widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join([*lines, *(_line(r, widths) for r in rows)])


def _ratio(ours: Any, theirs: Any) -> float | None:
    numbers = (int, float)
    if isinstance(ours, numbers) and isinstance(theirs, numbers) and not isinstance(ours, bool) \
            and theirs:
        return ours / theirs
    return None


def _line(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def checks(peer: dict[str, Any] | None, ours: dict[str, Any] | None,
           tuned: dict[str, Any] | None, expected: set[str] | None = None,
           with_peer: bool = True) -> list[str]:
    """Each claim of this benchmark as ``PASS``/``FAIL`` and what was measured: tunekit meets the
    goal, falls back the expected ops only, its int8 model is faster than FP32 at batch 32, and
    (with the peer) needs no more evaluations than INC. A peer that did not run fails its check."""
    met = bool(ours and ours["met"])
    lines = [_check(met, f"tunekit meets the goal ({'met' if met else 'not met'})")]
    if expected is not None:
        got = set((ours or {}).get("fallback_ops") or {})
        lines.append(_check(met and got == expected, f"tunekit falls back {sorted(got)} "
                                                     f"(expected {sorted(expected)})"))
    fast = speedup(tuned, "bs32")
    lines.append(_check(fast is not None and fast > 1, "tunekit's int8 model vs FP32 at batch "
                        f"32: {'—' if fast is None else f'{fast:.2f}×'} (> 1)"))
    if with_peer:
        ours_n, theirs_n = (ours or {}).get("evaluations"), (peer or {}).get("n_evals")
        lines.append(_check(ours_n is not None and theirs_n is not None and ours_n <= theirs_n,
                            f"tunekit evaluations {ours_n} ≤ INC's {theirs_n}"
                            + ("" if peer else " (INC did not run)")))
    return lines


def _check(passed: bool, text: str) -> str:
    return f"{'PASS' if passed else 'FAIL'}  {text}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-peer", action="store_true",
                        help="do not run INC: tunekit's own figures and checks only")
    parser.add_argument("--workspace", type=Path,
                        help="keep tunekit's workspace here (default: a temporary folder)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tunekit-bench-") as scratch:
        python = None if args.no_peer else setup_peer()
        peer = run_peer(python, Path(scratch)) if python else None
        workspace = (args.workspace or Path(scratch) / "workspace").resolve()
        workspace.parent.mkdir(parents=True, exist_ok=True)
        ours = run_tunekit(workspace)
        tuned = measure_tuned(workspace) if ours is not None else None
    print()
    print(table(peer, ours, tuned))
    if (line := benchmark_line(tuned)) is not None:
        print(line)
    loads = [f"INC run {_share(peer.get('foreign_cpu'))}" if peer else None,
             f"tunekit run {_share(ours.get('foreign_cpu'))}" if ours else None]
    print("CPU used by other processes during the runs: "
          + (", ".join(x for x in loads if x) or "n/a"))
    if ours and tuned and ours.get("best_metric") is not None \
            and abs(tuned["final_acc"] - ours["best_metric"]) > 1e-6:
        print(f"note: the reloaded model scores {tuned['final_acc']:.4f}, the tuning recorded "
              f"{ours['best_metric']:.4f}")
    verdicts = checks(peer, ours, tuned, {"conv1"}, with_peer=not args.no_peer)
    print("\n".join(verdicts))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 1 if any(v.startswith("FAIL") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
