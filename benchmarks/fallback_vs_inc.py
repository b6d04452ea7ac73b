#!/usr/bin/env python
"""tunekit vs Intel Neural Compressor 2.6 on the op-wise fallback case, in one run.

Workload: the digits CNN (examples/digits_pytorch, the peers' R1, same weights) calibrated on
images at half intensity, with no accuracy loss allowed. Default int8 loses ~20 points; only
returning conv1 to float recovers the FP32 top-1. Both tools use their basic strategy.

    python benchmarks/fallback_vs_inc.py [--no-peer] [--workspace DIR]

1. builds or reuses the peer environment (``../shared/peers/setup.sh inc2``, under
   ``$TUNEKIT_PEERS_OUT``); when that fails, or with ``--no-peer``, the peer's figures recorded in
   ``shared/peers/README.md`` are shown instead, marked "recorded, not re-run";
2. runs the peer (``run_inc_peer.py``) in its own environment and reads its JSON line;
3. runs ``tunekit tune examples/digits_pytorch/fallback.yaml`` in a fresh workspace;
4. rebuilds tunekit's tuned model with ``tunekit.load`` and times it against FP32 eager in this
   process (interleaved rounds, medians), as the peer script times its own model;
5. prints one table with the ratios tunekit / INC.

Wall times include each tool's baseline evaluation, calibration and trials, not model training.
The machine may be shared: the share of CPU used by other processes during each run is printed
beside the table, because wall-time ratios mean little when it is high.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from tunekit.benchmark.load import CpuShare

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO.parent / "shared" / "peers"
EXAMPLE = REPO / "examples" / "digits_pytorch"
PEER_ARGS = ["--strategy", "basic", "--criterion", "absolute", "--loss", "0.0",
             "--calib", "scale0.5"]
RECORDED_ROW = "| scale0.5 | basic |"
ROUNDS = 7
CALLS = {1: 40, 32: 10}  # calls per model per round, by batch size


# --------------------------------------------------------------------------- the peer


def peers_out() -> Path:
    default = Path.home() / ".cache" / "tunekit-peers"
    return Path(os.environ.get("TUNEKIT_PEERS_OUT") or default)


def setup_peer() -> Path | None:
    """The peer venv's python, building the venv first if needed; None (with a reason) if not."""
    script = PEERS / "setup.sh"
    if not script.exists():
        print(f"peer: {script} not found")
        return None
    print("peer: setting up or reusing the INC 2.6 environment (first time: a few minutes)")
    done = subprocess.run(["bash", str(script), "inc2"], capture_output=True, text=True)
    python = peers_out() / "venv-inc2" / "bin" / "python"
    if done.returncode != 0 or not python.exists():
        print(f"peer: setup failed (exit {done.returncode}):\n{_tail(done.stdout + done.stderr)}")
        return None
    return python


def run_peer(python: Path, log_dir: Path) -> dict[str, Any] | None:
    """Run the peer tuning; its one JSON line, or None (with its log tail) when it fails."""
    print("peer: tuning with INC 2.6 (basic strategy) ...", flush=True)
    log = log_dir / "inc_peer.log"
    with CpuShare().measure() as share, log.open("w") as stderr:
        done = subprocess.run([str(python), str(PEERS / "run_inc_peer.py"), *PEER_ARGS],
                              stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=PEERS)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"peer: run failed (exit {done.returncode}); log {log}:\n"
              f"{_tail(log.read_text(errors='replace'))}")
        return None
    result = json.loads(lines[-1])
    result["foreign_cpu"] = share.foreign
    print(f"peer: {lines[-1]}")
    return result


def recorded_peer() -> dict[str, Any]:
    """The peer's figures for this case from shared/peers/README.md (median of 3 recorded runs)."""
    readme = PEERS / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    row = next((line for line in text.splitlines() if line.startswith(RECORDED_ROW)), None)
    if row is None:
        return {"recorded": True}
    cells = [c.strip() for c in row.strip("|").split("|")]
    # | calib | strategy | met | evals | wall s | fell back | int8 speedup bs32 |
    return {"recorded": True, "met": cells[2].split("/")[0] == cells[2].split("/")[-1],
            "n_evals": int(cells[3]), "tune_wall_s": float(cells[4]),
            "fallback_ops": {cells[5].split(" ")[0]: cells[5].split(" ")[-1]},
            "latency": {"bs32": {"speedup": float(cells[6].rstrip("×"))}}}


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
    (``torch.from_numpy`` of the image array, as ``run_inc_peer.py`` feeds its models), so INC
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


def table(peer: dict[str, Any], ours: dict[str, Any] | None, tuned: dict[str, Any] | None) -> str:
    def speedup(result: dict[str, Any] | None, batch: str) -> float | None:
        return ((result or {}).get("latency") or {}).get(batch, {}).get("speedup")

    label = "INC 2.6 basic" + (" (recorded, not re-run)" if peer.get("recorded") else "")
    peer_cells = (peer.get("met"), peer.get("n_evals"), peer.get("tune_wall_s"),
                  peer.get("final_acc"), fell_back(peer.get("fallback_ops")),
                  speedup(peer, "bs32"), speedup(peer, "bs1"))
    rows = [row(label, *peer_cells)]
    if ours is not None:
        our_cells = (ours["met"], ours["evaluations"], ours["wall_s"],
                     (tuned or {}).get("final_acc", ours.get("best_metric")),
                     fell_back(ours.get("fallback_ops")), speedup(tuned, "bs32"),
                     speedup(tuned, "bs1"))
        rows.append(row("tunekit basic", *our_cells))
        ratios = [_ratio(a, b) for a, b in zip(our_cells[1:], peer_cells[1:])]
        rows.append(["tunekit / INC", "", *("—" if r is None else f"{r:.2f}" for r in ratios)])
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-peer", action="store_true",
                        help="do not run INC; show its recorded figures")
    parser.add_argument("--workspace", type=Path,
                        help="keep tunekit's workspace here (default: a temporary folder)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tunekit-bench-") as scratch:
        python = None if args.no_peer else setup_peer()
        peer = (run_peer(python, Path(scratch)) if python else None) or recorded_peer()
        workspace = (args.workspace or Path(scratch) / "workspace").resolve()
        workspace.parent.mkdir(parents=True, exist_ok=True)
        ours = run_tunekit(workspace)
        tuned = measure_tuned(workspace) if ours is not None else None
    print()
    print(table(peer, ours, tuned))
    if (line := benchmark_line(tuned)) is not None:
        print(line)
    loads = [f"INC run {_share(peer.get('foreign_cpu'))}" if not peer.get("recorded") else None,
             f"tunekit run {_share(ours.get('foreign_cpu'))}" if ours else None]
    print("CPU used by other processes during the runs: "
          + (", ".join(x for x in loads if x) or "n/a"))
    if ours and tuned and ours.get("best_metric") is not None \
            and abs(tuned["final_acc"] - ours["best_metric"]) > 1e-6:
        print(f"note: the reloaded model scores {tuned['final_acc']:.4f}, the tuning recorded "
              f"{ours['best_metric']:.4f}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if ours is not None and ours["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
