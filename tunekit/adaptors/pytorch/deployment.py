"""Deploying a tuned PyTorch candidate: ``backend: auto`` chooses the backend by measurement.

Why after the trials: under ``auto`` the trials are built by FX (eager where FX cannot trace the
model): sub-second builds with real int8 kernels, so a tuning of dozens of trials stays cheap and
latency objectives time real kernels. PT2E is only fast once Inductor has compiled it (10-60 s
here), so it is built once, for the accepted config. Each backend that can build that config is
timed side by side on the user's batch, and the fastest whose model still meets the accuracy goal
is handed over. A backend that fails on the model (export error, quantizer exception, compile
error) is skipped with one logged line naming it.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from tunekit.adaptors.pytorch.pt2e_backend import PT2EModel
from tunekit.adaptors.pytorch.runtime import call_model

_log = logging.getLogger(__name__)
#: interleaved timing rounds per backend, and the least time one round spends on a backend
ROUNDS, ROUND_S = 5, 0.05


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters (log lines, result.json)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def warm(model: nn.Module, inputs: Any) -> float:
    """Two calls under ``inference_mode`` (a PT2E model compiles on its first); seconds taken."""
    start = time.perf_counter()
    with torch.inference_mode():
        call_model(model, inputs)
        call_model(model, inputs)
    return time.perf_counter() - start


def side_by_side(models: Mapping[str, nn.Module], inputs: Any) -> dict[str, float]:
    """Median seconds per call of each (warmed) model on ``inputs``, rounds interleaved so the
    load of a shared machine falls on every model alike."""
    samples: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for _ in range(ROUNDS):
            for name, model in models.items():
                calls, start = 0, time.perf_counter()
                while calls == 0 or time.perf_counter() - start < ROUND_S:
                    call_model(model, inputs)
                    calls += 1
                samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in samples.items()}


def choose(options: dict[str, nn.Module], trial_backend: str, inputs: Any,
           accepts: Callable[[nn.Module], bool],
           skipped: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The fastest backend of ``options`` whose model meets the goal (the trial's own model,
    ``options[trial_backend]``, already did), and what was measured."""
    for name in list(options):
        if name == trial_backend:
            continue
        try:
            warm(options[name], inputs)
        except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for Inductor
            skipped[name] = one_line(exc)
            _log.warning("backend %s skipped for this model: %s", name, skipped[name])
            del options[name]
    warm(options[trial_backend], inputs)
    latency = side_by_side(options, inputs)
    chosen = trial_backend
    for name in sorted(latency, key=latency.__getitem__):
        if name == trial_backend:
            break
        if accepts(options[name]):
            chosen = name
            break
        _log.warning("backend %s is faster but its model misses the accuracy goal", name)
    info: dict[str, Any] = {"backend": chosen,
                            "latency_ms": {k: round(v * 1e3, 3) for k, v in latency.items()}}
    if skipped:
        info["skipped"] = dict(skipped)
    return chosen, info


def deploy(candidate: nn.Module, backend: str, alternatives: Mapping[str, Callable[[], nn.Module]],
           inputs: Any, accepts: Callable[[nn.Module], bool],
           not_worth: str | bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The deployed form of the accepted ``candidate`` (built by ``backend``) and what was
    decided: a PT2E candidate compiled, or under ``auto`` the fastest of it and the models the
    ``alternatives`` build (by backend name), each checked with ``accepts`` before it is kept;
    ``not_worth`` (a reason) skips the alternatives unbuilt, as for a model too small to repay
    a compile."""
    if isinstance(candidate, PT2EModel):
        candidate.deploy()
        if not accepts(candidate):  # compiled int8 rounds apart from the emulated graph
            _log.warning("the compiled pt2e model misses the accuracy goal; handing over the "
                         "uncompiled one the trial scored")
            candidate.deployed = False
        return candidate, {"backend": backend, "compiled": candidate.deployed,
                           "compile_s": round(candidate.compile_s or 0.0, 3)}
    if not_worth and alternatives:
        _log.info("backends %s not tried: %s", ", ".join(alternatives), not_worth)
        return candidate, {"backend": backend, "not_tried": dict.fromkeys(alternatives, not_worth)}
    if not alternatives:
        return candidate, {"backend": backend}
    options, skipped = {backend: candidate}, {}
    for name, build in alternatives.items():
        try:
            built = build()
            options[name] = built.deploy() if isinstance(built, PT2EModel) else built
        except Exception as exc:  # noqa: BLE001 - any failure skips the backend, named
            skipped[name] = one_line(exc)
            _log.warning("backend %s skipped for this model: %s", name, skipped[name])
    chosen, info = choose(options, backend, inputs, accepts, skipped)
    compile_s = getattr(options.get("pt2e"), "compile_s", None)
    if compile_s is not None:
        info["compile_s"] = round(compile_s, 3)
    return options[chosen], info
