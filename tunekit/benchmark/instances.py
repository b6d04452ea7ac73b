"""Run the benchmark in this process, or in fresh processes: several at once on disjoint core
sets, and/or several runs one after the other.

Several runs exist because a latency depends on the process as much as on the model: on this
project's 2-core VM the same FP32 model timed 2.4–4.6 ms at batch 32 (0.27–0.84 ms at batch 1)
from one fresh process to the next, each figure stable within its process. ``processes`` runs
(default 3) each start fresh workers; the report takes the median and shows the range.

Several instances show what a machine serves when each copy of the model gets its own cores
(throughput adds up; latency shows the interference). Each instance is a worker process
(:mod:`.worker`) pinned with ``os.sched_setaffinity`` before it imports the framework, running
``threads`` = its core count unless ``benchmark.threads`` says otherwise. Workers load their
models, report ready, and start timing together when all are ready; they report each finished
step, which drives one progress bar, and their figures as one JSON line at the end.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from tunekit import config as config_module
from tunekit.benchmark import measure as measuring
from tunekit.benchmark.report import Report
from tunekit.config import BenchmarkSpec
from tunekit.errors import ConfigError, TunekitError
from tunekit.progress import progress


def core_sets(bench: BenchmarkSpec, available: Sequence[int]) -> list[list[int]]:
    """``instances`` disjoint sets of ``cores_per_instance`` cores (default: an even share)."""
    cores = sorted(available)
    per = bench.cores_per_instance or len(cores) // bench.instances
    if per < 1 or per * bench.instances > len(cores):
        raise ConfigError("benchmark.instances", f"{bench.instances} instance(s) × "
                                                 f"{per or bench.cores_per_instance} core(s) do "
                                                 f"not fit the {len(cores)} core(s) this process "
                                                 f"may use ({cores})")
    return [cores[i * per:(i + 1) * per] for i in range(bench.instances)]


def run(config_path: Path, overrides: Sequence[str], tuned_path: Path) -> Report:
    """Benchmark the config's FP32 model against the tuned model at ``tuned_path``."""
    spec = config_module.load(config_path, overrides)
    measuring.workspace_of(tuned_path)  # a wrong --model fails here, not in every worker
    sizes = measuring.batch_sizes(spec, tuned_path)
    bench = replace(spec.benchmark, batch_sizes=sizes)
    spec = replace(spec, benchmark=bench)
    overrides = [*overrides, f"benchmark.batch_sizes={list(sizes)}"]  # the workers' too
    total = len(list(measuring.steps(bench)))
    if bench.instances == 1 and bench.processes == 1:
        adaptor, models, data = measuring.load(spec, tuned_path)
        bar = iter(progress(range(total), "benchmark", total))
        figures = measuring.measure(adaptor, models, data, bench, bench.threads,
                                    tick=lambda: next(bar, None))
        return Report(bench, tuned_path, [[figures]], [sorted(os.sched_getaffinity(0))])
    sets = core_sets(bench, os.sched_getaffinity(0))
    job = {"config": str(Path(config_path).resolve()), "overrides": list(overrides),
           "model": str(Path(tuned_path).resolve()), "drop_busy": bench.instances == 1}
    runs = []
    for number in range(bench.processes):
        workers = [_start(job, cores, bench.threads or len(cores)) for cores in sets]
        label = f"benchmark {number + 1}/{bench.processes}" if bench.processes > 1 \
            else "benchmark"
        try:
            runs.append(_collect(workers, total, label))
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                worker.wait()
    return Report(bench, tuned_path, runs, sets)


def _start(job: dict[str, Any], cores: list[int], threads: int) -> subprocess.Popen[str]:
    args = json.dumps({**job, "cores": cores, "threads": threads})
    return subprocess.Popen([sys.executable, "-m", "tunekit.benchmark.worker", args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _collect(workers: list[subprocess.Popen[str]], steps: int,
             label: str) -> list[list[measuring.Figures]]:
    """Wait until every worker is ready, start them together, follow their ticks."""
    lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
    for index, worker in enumerate(workers):
        assert worker.stdout is not None
        threading.Thread(target=_pump, args=(index, worker.stdout, lines), daemon=True).start()
    results: dict[int, list[measuring.Figures]] = {}

    def events() -> Iterator[None]:
        ready = 0
        while len(results) < len(workers):
            index, line = lines.get()
            if line is None:
                if index not in results:
                    raise TunekitError(f"benchmark instance {index} failed:\n"
                                       f"{_stderr(workers[index])}")
                continue
            message = json.loads(line)
            if message["event"] == "ready":
                ready += 1
                if ready == len(workers):
                    for worker in workers:
                        assert worker.stdin is not None
                        worker.stdin.write("go\n")
                        worker.stdin.flush()
            elif message["event"] == "tick":
                yield None
            elif message["event"] == "result":
                results[index] = [measuring.Figures(**{**f, "round_medians_s": tuple(
                    f["round_medians_s"])}) for f in message["figures"]]

    for _ in progress(events(), label, steps * len(workers)):
        pass
    return [results[i] for i in range(len(workers))]


def _pump(index: int, stream: IO[str], lines: queue.Queue[tuple[int, str | None]]) -> None:
    for line in stream:
        if line.startswith("{"):
            lines.put((index, line))
    lines.put((index, None))


def _stderr(worker: subprocess.Popen[str]) -> str:
    worker.wait()
    text = worker.stderr.read() if worker.stderr is not None else ""
    return "\n".join(text.strip().splitlines()[-15:])
