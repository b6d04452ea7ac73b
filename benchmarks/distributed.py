"""Distributed tuning benchmark: wall time of a tuning with 1 worker against 2 workers, both
against PostgreSQL, on a workload whose trials dominate.

    python benchmarks/distributed.py [--strategies basic,exhaustive,random] [--slow 0.5]
                                     [--workers 2] [--storage postgresql://...]

The workload is ``benchmarks/workloads/slow_digits.yaml``: the fallback example (default int8
loses 20 points until ``conv1`` returns to float) with each evaluation batch delayed by
``--slow`` seconds (10 batches a trial), standing in for a model whose trials take minutes. Each
strategy is tuned once with ``--workers 1`` and once with ``--workers N`` (local worker processes,
``tunekit tune --storage URL --study NAME --workers N``); the table shows both wall times, their
ratio and whether both runs reached the same best config; then the checks, PASS or FAIL (same
result for every strategy; at least ``--min-speedup`` on exhaustive and random), and exit status
1 when one fails.

Without ``--storage`` a private PostgreSQL server is started on loopback
(:mod:`tunekit.testing.postgres`; needs Debian's ``postgresql`` packages) or
``TUNEKIT_TEST_POSTGRES_URL`` is used. The ratio is only meaningful on an otherwise idle
machine with at least N + 1 cores; the load average is printed under the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT / "benchmarks" / "workloads" / "slow_digits.yaml"


def run(strategy: str, workers: int, url: str, slow: float, folder: Path) -> tuple[float, dict]:
    """One tuning; its wall time (process start to exit, model training excluded by the
    warm cache) and its best config."""
    study = f"bench-{strategy}-{workers}-{uuid.uuid4().hex[:6]}"
    workspace = folder / study
    env = {**os.environ, "TUNEKIT_SLOW_EVAL_S": str(slow), "OMP_NUM_THREADS": "1",
           "TUNEKIT_CACHE_DIR": str(folder / "cache")}
    command = [sys.executable, "-m", "tunekit.cli", "tune", str(WORKLOAD), "--workspace",
               str(workspace), "--storage", url, "--study", study, "--workers", str(workers),
               "--set", f"tuning.strategy.name={strategy}", "-q"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    best = json.loads((workspace / "best_config.json").read_text())
    trials = json.loads((workspace / "result.json").read_text())["trials"]
    return wall, {"ops": best["ops"], "trial": best["trial"], "trials": trials}


def warm_cache(folder: Path) -> None:
    """Train and cache the digits model once, outside the timed runs."""
    env = {**os.environ, "TUNEKIT_CACHE_DIR": str(folder / "cache")}
    code = (f"import sys; sys.path.insert(0, {str(WORKLOAD.parent)!r}); import slow_digits; "
            "slow_digits.load_model()")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", default="basic,exhaustive,random")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slow", type=float, default=0.5,
                        help="seconds each evaluation batch waits (10 batches a trial)")
    parser.add_argument("--storage", help="a PostgreSQL URL (default: a private server)")
    parser.add_argument("--min-speedup", type=float, default=1.2,
                        help="the speed-up N workers must reach over 1 on exhaustive and random, "
                             "whose proposals are independent (default 1.2)")
    args = parser.parse_args()
    server = None
    url = args.storage or os.environ.get("TUNEKIT_TEST_POSTGRES_URL")
    if url is None:
        from tunekit.testing import postgres

        server = postgres.start()
        url = server.url
    try:
        with tempfile.TemporaryDirectory(prefix="tunekit-bench-dist-") as tmp:
            folder = Path(tmp)
            warm_cache(folder)
            rows = []
            for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
                one, first = run(strategy, 1, url, args.slow, folder)
                many, second = run(strategy, args.workers, url, args.slow, folder)
                rows.append((strategy, first["trials"], one, many, one / many, first == second))
    finally:
        if server is not None:
            server.stop()
    print(f"| strategy | trials | 1 worker s | {args.workers} workers s | speed-up | same result |")
    print("|---|---:|---:|---:|---:|---|")
    for strategy, trials, one, many, ratio, same in rows:
        print(f"| {strategy} | {trials} | {one:.1f} | {many:.1f} | {ratio:.2f}× | "
              f"{'yes' if same else 'NO'} |")
    print(f"\nslow evaluation: {args.slow} s per batch; load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (compare only on an idle machine)")
    verdicts = checks(rows, args.workers, args.min_speedup)
    print("\n".join(verdicts))
    return 1 if any(v.startswith("FAIL") for v in verdicts) else 0


def checks(rows: list[tuple[str, int, float, float, float, bool]], workers: int,
           min_speedup: float) -> list[str]:
    """Per strategy: the same result with N workers as with 1 (always); a speed-up of at least
    ``min_speedup`` where the proposals are independent (exhaustive, random: basic is mostly
    sequential, docs/distributed.md)."""
    lines = []
    for strategy, _, _, _, ratio, same in rows:
        lines.append(f"{'PASS' if same else 'FAIL'}  {strategy}: {workers} workers reach the "
                     "1-worker result")
        if strategy in ("exhaustive", "random"):
            lines.append(f"{'PASS' if ratio >= min_speedup else 'FAIL'}  {strategy}: "
                         f"{ratio:.2f}× faster with {workers} workers (≥ {min_speedup})")
    return lines


if __name__ == "__main__":
    sys.exit(main())
