"""What report.html shows, derived from ``result.json`` alone.

The page is drawn from the file, not from live objects, so the report written at the end of a
tuning and the one ``tunekit report --html`` writes later are the same page. Nothing here imports
a framework or matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tunekit.changes import decode
from tunekit.errors import ConfigError
from tunekit.space import PRECISIONS, OpConfig, OpKey, QuantConfig
from tunekit.speed import Speed


@dataclass(frozen=True)
class TrialView:
    """One trial as the report shows it; ``label`` is its config as changes from the default."""

    number: int
    metric: float | None
    accepted: bool
    failed: bool
    error: str | None
    duration_s: float
    details: Mapping[str, float]
    config: QuantConfig
    label: str
    changes: Mapping[OpKey, OpConfig]  # the ops that differ from the default config
    #: the speed objective timed beside FP32, as the tuning measured it (None: not timed)
    speed: Speed | None = None


@dataclass(frozen=True)
class Fallback:
    """A measured single-op fallback: trial ``trial`` equals trial ``reference`` except that
    ``op`` runs in the wider ``precision``; ``metric_change`` is what that one op cost in the
    narrower one (the metric ``trial`` gained over ``reference``)."""

    op: OpKey
    precision: str
    trial: int
    reference: int
    metrics: tuple[float, float]  # the reference's metric, the trial's
    metric_change: float
    speedup: float | None


@dataclass(frozen=True)
class OpRow:
    """One op of the best model: its config, and the default's (int8, where the space allows)."""

    op: OpKey
    config: OpConfig
    default: OpConfig | None

    @property
    def fell_back(self) -> bool:
        return self.default is not None and self.config.precision != self.default.precision


class ReportView:
    """A finished tuning as read from its ``result.json`` (see :meth:`TuneResult.to_dict`)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        if "history" not in data:
            raise ConfigError("result.json", "has no trial history (written by a tunekit older "
                                             "than report.html); tune again to get one")
        self.data = data
        self.higher_is_better = bool(data.get("higher_is_better", True))
        self.objectives: dict[str, Mapping[str, str]] = dict(data.get("objectives") or {})
        try:
            self.default = QuantConfig.from_list(data.get("default_ops") or [])
            self.trials = [self._trial(record) for record in data["history"]]
            self.baseline: float = float(data["baseline"])
            self.target: float = float(data["target"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError("result.json", f"is damaged or not tunekit's ({type(exc).__name__}: "
                                             f"{exc}); tune again to rewrite it") from None

    def _trial(self, record: Mapping[str, Any]) -> TrialView:
        changes = decode(record.get("changes") or {}, self.data.get("op_types") or {})
        if self.default.ops and not changes.ops.keys() <= self.default.ops.keys():
            raise ValueError(f"trial {record['trial']} changes ops the default config lacks")
        # one merge, not with_ops: that copies the whole config once per changed op
        config = QuantConfig({**self.default.ops, **changes.ops})
        label = config.summary(self.default if self.default.ops else None)
        return TrialView(number=record["trial"], metric=record.get("metric"),
                         accepted=bool(record.get("accepted")), failed=bool(record.get("failed")),
                         error=record.get("error"), duration_s=record.get("duration_s") or 0.0,
                         details=record.get("details") or {}, config=config, label=label,
                         changes=changes.ops, speed=self._speed(record))

    def _speed(self, record: Mapping[str, Any]) -> Speed | None:
        """The trial's :class:`Speed` for the speed objective, from its ``speed`` record."""
        figure = (record.get("speed") or {}).get(self.speed_objective or "")
        if not figure:
            return None
        return Speed(figure["model_ms"], figure["fp32_ms"], figure.get("batch_size"),
                     figure.get("spread"), figure.get("runtimes"), figure.get("foreign_cpu"))

    # ------------------------------------------------------------------ speed

    @property
    def speed_objective(self) -> str | None:
        """The objective the speed figures use: the first one with a unit of time, else the
        first one."""
        timed = [n for n, o in self.objectives.items() if o.get("unit", "").strip() == "s"]
        return (timed or list(self.objectives) or [None])[0]

    @property
    def timed(self) -> bool:
        """Whether the speed objective is a time (then :meth:`speedup` is a speed-up)."""
        name = self.speed_objective or ""
        return self.objectives.get(name, {}).get("unit", "").strip() == "s"

    @property
    def speed_label(self) -> str:
        """What :meth:`speedup` means, for axes."""
        if self.timed:
            return "speed-up over FP32 (FP32 time / model time, > 1 faster)"
        return f"{self.speed_objective} gain over FP32 (> 1 better)"

    @property
    def speed_column(self) -> str:
        """:meth:`speedup`'s short column head."""
        return "speed-up (> 1 faster)" if self.timed else "× FP32 (> 1 better)"

    def fp32_value(self, details: Mapping[str, float] | None = None) -> float | None:
        """The FP32 model's value of the speed objective: measured beside the trial when the
        objective drifts (``<name>.fp32``), else the baseline's."""
        name = self.speed_objective
        if name is None:
            return None
        beside = (details or {}).get(f"{name}.fp32")
        return beside if beside is not None else \
            (self.data.get("baseline_objectives") or {}).get(name)

    def speedup(self, trial: TrialView) -> float | None:
        """The trial's speed-up over FP32 (:class:`Speed`: FP32 time / model time, > 1 faster)
        where it was timed beside FP32; else ``FP32 value / model value`` of the speed
        objective, inverted for one to maximize, so > 1 always means better than FP32."""
        if trial.speed is not None:
            return trial.speed.speedup
        details, name = trial.details, self.speed_objective
        value, fp32 = details.get(name or ""), self.fp32_value(details)
        if value is None or fp32 is None or value <= 0 or fp32 <= 0:
            return None
        maximize = self.objectives[name or ""].get("direction") == "maximize"
        return value / fp32 if maximize else fp32 / value

    @property
    def best(self) -> TrialView | None:
        number = self.data.get("best_trial")
        return next((t for t in self.trials if t.number == number), None)

    @property
    def pareto_numbers(self) -> list[int]:
        return [entry["trial"] for entry in self.data.get("pareto_front") or []]

    # ------------------------------------------------------------------ per-op views

    def final_ops(self) -> list[OpRow]:
        best = QuantConfig.from_list(self.data.get("best_ops") or [])
        return [OpRow(op, config, self.default.ops.get(op)) for op, config in best.ops.items()]

    @cached_property
    def fallbacks(self) -> list[Fallback]:
        """Every trial that moved exactly one op to a wider precision relative to an evaluated
        trial (the default config where that pair exists), largest metric gain first: the
        measured cost of each op in the narrower precision."""
        found: list[Fallback] = []
        for trial, pairs in _single_op_pairs(self.trials):
            ref, op = min(pairs, key=lambda p: (p[0].config != self.default, p[0].number))
            before, after = ref.metric or 0.0, trial.metric or 0.0
            gain = after - before if self.higher_is_better else before - after
            found.append(Fallback(op, trial.config.ops[op].precision, trial.number, ref.number,
                                  (before, after), gain, self.speedup(trial)))
        return sorted(found, key=lambda f: (-f.metric_change, f.trial))

    def sensitivity(self) -> dict[str, dict[str, float]]:
        """The strategies' proxy scores, ``{source: {op: score}}`` (higher: more sensitive)."""
        raw = self.data.get("sensitivity") or {}
        return {str(source): {str(op): float(score) for op, score in scores.items()}
                for source, scores in raw.items() if scores}

    def failures(self) -> list[TrialView]:
        return [t for t in self.trials if t.failed]


def _single_op_pairs(trials: Sequence[TrialView]
                     ) -> list[tuple[TrialView, list[tuple[TrialView, OpKey]]]]:
    """Each trial with the (reference, op) pairs where it equals the reference but for that op,
    which it runs in a wider precision (int8 → bf16 or fp32; bf16 → fp32, as graph
    optimization's AMP tunings fall back).

    Trials are indexed by a sum of their changes' hashes, with and without each op, so finding
    the pairs costs a few lookups per changed op: comparing every pair of trials op by op took
    18 s for 300 trials of a 300-op model, for a page written at the end of every tuning.
    """
    unique: dict[frozenset[Any], TrialView] = {}  # a config evaluated twice: its first trial
    for t in trials:
        if not t.failed and t.metric is not None:
            unique.setdefault(frozenset(t.changes.items()), t)
    scored = list(unique.values())
    whole: dict[int, list[TrialView]] = {}  # sum over all of a trial's changes
    but_one: dict[tuple[OpKey, int], list[TrialView]] = {}  # ... over all but one op's
    hashes = [{op: _mix(hash((op, c))) for op, c in t.changes.items()} for t in scored]
    for t, h in zip(scored, hashes):
        total = sum(h.values())
        whole.setdefault(total, []).append(t)
        for op, value in h.items():
            but_one.setdefault((op, total - value), []).append(t)
    pairs: dict[int, dict[tuple[int, OpKey], TrialView]] = {}  # by the wider trial's number
    for t, h in zip(scored, hashes):
        total = sum(h.values())
        for op, value in h.items():
            # the other trial differs in op alone: changed otherwise (it finds t in its own
            # turn), or left at the default, so either may be the wider one
            for other in but_one.get((op, total - value), []) + whole.get(total - value, []):
                low, high = (other, t) if _rank(other.config.ops[op]) < _rank(t.changes[op]) \
                    else (t, other)
                if _rank(low.config.ops[op]) < _rank(high.config.ops[op]) \
                        and _same_but(op, low, high):
                    pairs.setdefault(high.number, {})[(low.number, op)] = low
    by_number = {t.number: t for t in scored}
    return [(by_number[number], [(low, op) for (_, op), low in found.items()])
            for number, found in sorted(pairs.items())]


def _mix(value: int) -> int:
    """splitmix64's finalizer. Python's tuple hash is close enough to additive that sums of raw
    hashes collide (``{a: x, b: y}`` and ``{a: y, b: x}`` summed alike); mixed, they do not."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


_MASK = (1 << 64) - 1


def _same_but(op: OpKey, a: TrialView, b: TrialView) -> bool:
    """Whether two trials' changes agree on every op but ``op`` (hash sums can collide)."""
    return {k: v for k, v in a.changes.items() if k != op} == \
        {k: v for k, v in b.changes.items() if k != op}


def _rank(config: OpConfig) -> int:
    return PRECISIONS.index(config.precision)


def scale(unit: str, values: Sequence[float]) -> tuple[float, str]:
    """A factor and unit label that make ``values`` readable: seconds as ms or µs, bytes as
    KiB or MiB."""
    unit = unit.strip()
    top = max((abs(v) for v in values), default=0.0)
    if unit == "s":
        return (1e3, "ms") if top >= 1e-3 else (1e6, "µs")
    if unit == "B":
        return (2.0 ** -20, "MiB") if top >= 2 ** 20 else (2.0 ** -10, "KiB")
    return 1.0, unit


__all__ = ["Fallback", "OpRow", "ReportView", "TrialView", "scale"]
