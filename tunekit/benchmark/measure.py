"""Time the FP32 and the tuned model of a config in this process.

Timing uses :mod:`tunekit.timing` (warm-up, gc off) and ``adaptor.run_batch``, as the
tuning's ``performance`` objective does, so a benchmark figure and the tuning's are the same
measurement. The two models alternate in rounds, so a change in the load of a shared
machine hits both alike rather than skewing their ratio; rounds that ran beside other processes'
load are dropped (:mod:`.load`), and each figure pools the calls of the rounds kept.
"""

from __future__ import annotations

import json
import statistics
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunekit import plugins
from tunekit.adaptor import Adaptor
from tunekit.batches import feed
from tunekit.benchmark.load import CpuShare, quiet_rounds
from tunekit.config import BenchmarkSpec, TuneSpec
from tunekit.data import batch_inputs, split_batch
from tunekit.data import batch_size as samples_in
from tunekit.errors import ConfigError
from tunekit.references import data_source, resolve
from tunekit.timing import time_calls

MODELS = ("fp32", "tuned")


@dataclass(frozen=True)
class Figures:
    """One model at one batch size: latency median and 90th percentile, throughput, over the
    ``rounds_kept`` rounds that ran without foreign load."""

    model: str
    batch_size: int
    median_s: float
    p90_s: float
    throughput: float
    threads: int | None
    calls: int
    rounds_kept: int = 1
    foreign_cpu: float | None = None  # median share of the CPU other processes used per round
    #: the median of each kept round (the tuned/FP32 ratio per round gives the spread)
    round_medians_s: tuple[float, ...] = ()
    #: the runtime the model ran in (``Adaptor.runtime``), None: the framework's own
    runtime: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "batch_size": self.batch_size,
                "median_ms": self.median_s * 1e3, "p90_ms": self.p90_s * 1e3,
                "throughput": self.throughput, "threads": self.threads, "calls": self.calls,
                "rounds_kept": self.rounds_kept, "foreign_cpu": self.foreign_cpu,
                "round_medians_ms": [m * 1e3 for m in self.round_medians_s],
                "runtime": self.runtime}


def workspace_of(tuned_path: Path) -> Path | None:
    """The tuning workspace ``tuned_path`` names (the folder, or a model file in it), or None
    for a model file of its own (what ``tunekit optimize --out`` writes); a ConfigError naming
    ``--model`` if it is neither."""
    tuned_path = Path(tuned_path)
    workspace = tuned_path.parent if tuned_path.is_file() else tuned_path
    if (workspace / "best_config.json").exists():
        return workspace
    if tuned_path.is_file() or (tuned_path / "saved_model.pb").exists():
        return None
    raise ConfigError("--model", f"{str(tuned_path)!r} is not a tuning workspace (no "
                                 "best_config.json) nor a model file; run tunekit tune (or "
                                 "tunekit optimize --out FILE) first, or pass --model")


def load(spec: TuneSpec, tuned_path: Path) -> tuple[Adaptor, dict[str, Any], Iterable[Any]]:
    """The adaptor, ``{"fp32": model, "tuned": model}`` and the input data of a config.

    ``tuned_path`` is a tuning workspace or a model file in one (its recipe beside it): the
    tuned model is rebuilt with :func:`tunekit.load` from the FP32 model the config names; or
    a model file of its own (``tunekit optimize --out``), which the adaptor loads.
    """
    from tunekit.api import load as load_tuned
    from tunekit.api import load_model

    workspace = workspace_of(tuned_path)
    adaptor = plugins.create("tunekit.adaptors", spec.model.framework, spec.model.options)
    fp32 = load_model(spec, adaptor)
    with warnings.catch_warnings():  # frameworks' deprecation notices about stored int8 tensors
        warnings.simplefilter("ignore", UserWarning)
        tuned = adaptor.load_model(Path(tuned_path)) if workspace is None \
            else load_tuned(workspace, fp32)
    # the batches read as the tuning read them (tunekit.batches), checked on the FP32 model
    return adaptor, {"fp32": fp32, "tuned": tuned}, feed(adaptor, fp32, None, _data(spec),
                                                         spec.data)[1]


def batch_sizes(spec: TuneSpec, tuned_path: Path) -> tuple[int, ...]:
    """``benchmark.batch_sizes``, else 1 and the batch size the tuning timed (its
    ``result.json``; for a model without one, the evaluation data's batch size): the speedup
    the tuning reported is then checked at the same batch, beside the latency of one sample."""
    if spec.benchmark.batch_sizes is not None:
        return spec.benchmark.batch_sizes
    timed = None
    workspace = workspace_of(tuned_path)
    if workspace is not None and (workspace / "result.json").exists():
        result = json.loads((workspace / "result.json").read_text(encoding="utf-8"))
        timed = next((int(v) for k, v in (result.get("best_objectives") or {}).items()
                      if k.endswith(".batch_size") and v), None)
    if timed is None:
        timed = samples_in(split_batch(next(iter(_data(spec))))[0])
    return tuple(sorted({1, timed}))


def _data(spec: TuneSpec) -> Iterable[Any]:
    """The evaluation batches (the calibration batches when the config gives none)."""
    for ref, where in ((spec.evaluation.data, "evaluation.data"),
                       (spec.quantization.calib_data, "quantization.calibration.data")):
        if ref:
            return data_source(resolve(ref, spec.base_dir, where), where)
    raise ConfigError("evaluation.data", "the benchmark runs the models on real inputs: give "
                                         "evaluation.data (or quantization.calibration.data)")


def steps(bench: BenchmarkSpec) -> Iterator[tuple[int, int, str]]:
    """``(batch size, round, model)`` in the order they are timed (``bench.batch_sizes`` set,
    see :func:`batch_sizes`)."""
    assert bench.batch_sizes is not None
    for batch_size in bench.batch_sizes:
        for round_ in range(bench.rounds):
            for model in MODELS:
                yield batch_size, round_, model


def measure(adaptor: Adaptor, models: dict[str, Any], data: Iterable[Any],
            bench: BenchmarkSpec, threads: int | None,
            tick: Callable[[], None] = lambda: None, drop_busy: bool = True) -> list[Figures]:
    """Figures per (model, batch size); ``tick`` is called after each step of :func:`steps`.

    With ``drop_busy``, rounds during which other processes used the CPU are left out (see
    :func:`~tunekit.benchmark.load.quiet_rounds`); several instances timing at once load each
    other by design, so they keep every round."""
    figures = []
    assert bench.batch_sizes is not None
    for batch_size in bench.batch_sizes:
        rounds: list[dict[str, list[float]]] = []
        foreign: list[float | None] = []
        thread_counts: dict[str, int | None] = {}
        inputs = batch_inputs(data, bench.iterations, batch_size, "benchmark.batch_sizes")
        for _ in range(bench.rounds):
            times: dict[str, list[float]] = {}
            with CpuShare().measure() as share:
                for name, model in models.items():
                    times[name], thread_counts[name] = time_calls(
                        adaptor, model, inputs, bench.warmup, bench.iterations, threads)
                    tick()
            rounds.append(times)
            foreign.append(share.foreign)
        kept = quiet_rounds(foreign) if drop_busy else list(range(len(rounds)))
        load = [f for f in foreign if f is not None]
        for name, model in models.items():
            calls = [t for i in kept for t in rounds[i][name]]
            figures.append(_figures(name, batch_size, calls, thread_counts[name], len(kept),
                                    statistics.median(load) if load else None,
                                    tuple(statistics.median(rounds[i][name]) for i in kept),
                                    adaptor.runtime(model)))
    return figures


def _figures(model: str, batch_size: int, calls: list[float], threads: int | None,
             rounds_kept: int, foreign_cpu: float | None, round_medians: tuple[float, ...],
             runtime: str | None) -> Figures:
    median = statistics.median(calls)
    p90 = statistics.quantiles(calls, n=10, method="inclusive")[-1] if len(calls) > 1 \
        else calls[0]
    return Figures(model, batch_size, median, p90, batch_size / median if median > 0 else 0.0,
                   threads, len(calls), rounds_kept, foreign_cpu, round_medians, runtime)
