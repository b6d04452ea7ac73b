"""The pass pipeline shared by every framework: run passes in order, report what each changed.

A pass is a small object with a ``name`` and a ``run(graph) -> graph`` method, registered in the
entry-point group ``tunekit.passes`` as ``FRAMEWORK.NAME`` (see :mod:`tunekit.graph.registry`);
its ``order`` places it in the pipeline. The pipeline only counts nodes before and after each pass, so a user can see which
pass did the work (and switch off one that does nothing for their model).
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tunekit.errors import ConfigError

log = logging.getLogger("tunekit")


class GraphPass(abc.ABC):
    """One graph rewrite that keeps the model's outputs (FP32 passes: within float rounding)."""

    #: the name ``graph_optimization.passes`` uses to switch the pass on or off
    name: ClassVar[str] = ""
    #: ``pytorch`` or ``tensorflow``: the graphs ``run`` takes
    framework: ClassVar[str] = ""
    #: place in the pipeline, ascending; built-ins use multiples of 10 so others fit between
    order: ClassVar[int] = 0
    #: the precision mixes whose pipeline runs this pass (``fp32``: FP32 only, ``bf16``: AMP)
    precisions: ClassVar[frozenset[str]] = frozenset({"fp32", "bf16"})
    #: the last run's decision in words, for the report (empty when node counts say it all)
    note: str = ""

    def bind(self, example_inputs: Any) -> GraphPass:
        """This pass for one run with its example batch; passes that trace or time the model
        need one and return a new instance, the others ignore it."""
        return self

    @abc.abstractmethod
    def run(self, graph: Any) -> Any:
        """The rewritten graph (may be ``graph`` itself, changed in place)."""


class ExamplePass(GraphPass):
    """A pass that needs the example batch (to trace, compile or time the model): each run
    gets its own instance holding the batch (``bind``), so a registered pass object stays
    stateless."""

    def __init__(self, example_inputs: Sequence[Any] | None = None) -> None:
        self.example_inputs = tuple(example_inputs) if example_inputs is not None else None
        self.note = ""

    def bind(self, example_inputs: Any) -> GraphPass:
        return type(self)(example_inputs)


@dataclass(frozen=True)
class PassReport:
    """What one pass did: node counts before and after, and how long it took."""

    name: str
    nodes_before: int
    nodes_after: int
    seconds: float
    note: str = ""

    def line(self) -> str:
        delta = self.nodes_after - self.nodes_before
        change = f"{delta:+d}" if delta else "no change in node count"
        return (f"{self.name:<20} {self.nodes_before:>5} → {self.nodes_after:<5} nodes "
                f"({change}, {self.seconds * 1e3:.0f} ms)"
                + (f"; {self.note}" if self.note else ""))


def select(available: Sequence[GraphPass], setting: Any,
           where: str = "graph_optimization.passes") -> list[GraphPass]:
    """The passes to run: all of ``available`` by default, or as ``setting`` says.

    ``setting`` is ``None`` (all), a list of pass names (exactly those, in the default order) or
    a mapping ``{name: true|false}`` that switches single passes on or off.
    """
    names = [p.name for p in available]
    if setting is None:
        return list(available)
    if isinstance(setting, Mapping):
        for key, value in setting.items():
            _known(str(key), names, where)
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}", f"must be true or false, got {value!r}")
        return [p for p in available if setting.get(p.name, True)]
    if isinstance(setting, (list, tuple)) and all(isinstance(s, str) for s in setting):
        for key in setting:
            _known(key, names, where)
        return [p for p in available if p.name in setting]
    raise ConfigError(where, "must be a list of pass names or a mapping {pass: true|false}; "
                             f"passes: {', '.join(names)}")


def _known(name: str, names: Sequence[str], where: str) -> None:
    if name not in names:
        raise ConfigError(f"{where}.{name}", f"unknown pass; this framework's passes: "
                                             f"{', '.join(names)}")


def needs_data(why: str) -> ConfigError:
    """The error of a graph optimization that needs an example batch and has none."""
    return ConfigError("quantization.calibration.data",
                       f"{why}: give calibration or evaluation data (Python: "
                       "example_data=...)")


def run_passes(graph: Any, passes: Sequence[GraphPass],
               count: Callable[[Any], int]) -> tuple[Any, list[PassReport]]:
    """Apply ``passes`` in order; ``count`` gives a graph's node count for the report."""
    reports = []
    for graph_pass in passes:
        before, start = count(graph), time.perf_counter()
        graph = graph_pass.run(graph)
        report = PassReport(graph_pass.name, before, count(graph), time.perf_counter() - start,
                            graph_pass.note)
        log.info("pass %s", report.line())
        reports.append(report)
    return graph, reports
