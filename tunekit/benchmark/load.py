"""How much of the machine other processes used while a block of timing ran.

A latency taken while another process competes for the cores says more about that process than
about the model. ``tunekit benchmark`` and the scripts in ``benchmarks/`` time in rounds and
drop the rounds that ran beside foreign load (see :func:`quiet_rounds`), so both report the same
kind of figure on a shared machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

#: rounds in which other processes used more than this share of the CPU are not kept
QUIET = 0.03


class CpuShare:
    """Share of the machine's CPU used by *other* processes while a block runs (Linux only;
    ``foreign`` stays None elsewhere).

    Counts busy time from /proc/stat minus the time of this process and its waited-for
    children, so a subprocess being measured is not counted as foreign load.
    """

    def __init__(self) -> None:
        self.foreign: float | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                ticks = [int(v) for v in stat.readline().split()[1:]]
        except OSError:
            return None
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return busy, own.user + own.system + own.children_user + own.children_system, time.time()

    @contextmanager
    def measure(self) -> Iterator[CpuShare]:
        start = self._sample()
        yield self
        end = self._sample()
        if start and end:
            wall = max(end[2] - start[2], 1e-9)
            other = (end[0] - start[0]) - (end[1] - start[1])
            self.foreign = max(0.0, other) / (wall * (os.cpu_count() or 1))


def quiet_rounds(foreign: Sequence[float | None], keep_at_least: int = 2) -> list[int]:
    """Indices of the rounds to keep: those with at most :data:`QUIET` foreign load, or the
    ``keep_at_least`` quietest when fewer are quiet (a busy machine still gets a figure, from
    its calmest moments). Rounds whose load is unknown count as quiet."""
    load = [0.0 if f is None else f for f in foreign]
    quiet = [i for i, f in enumerate(load) if f <= QUIET]
    if len(quiet) >= min(keep_at_least, len(load)):
        return quiet
    return sorted(sorted(range(len(load)), key=lambda i: load[i])[:keep_at_least])


__all__ = ["QUIET", "CpuShare", "quiet_rounds"]
