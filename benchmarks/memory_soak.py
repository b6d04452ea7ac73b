"""Memory over a long tuning: does the resident set stay flat across hundreds of trials?

Tunes the digits example (examples/digits_pytorch) with the random strategy, no early stop and
a budget of ``--trials`` trials, and samples the process's resident set size after every trial
(from the tuner's own per-trial log line). Prints RSS at checkpoints and the growth over the
second half of the run, where a leak shows as a steady slope while warm-up costs do not.
The check: growth over the second half at most ``--max-growth`` MiB per trial (PASS/FAIL; exit
status 1 on FAIL). The leak docs/reliability.md describes grew 2.08 MiB per trial there, and the
fixed code's second half shrank (−0.15 MiB/trial), so the default bound separates the two; a
short run (a few dozen trials) is still in its warm-up and fails it.

    python benchmarks/memory_soak.py [--trials 200] [--objective size] [--max-growth 0.05]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits_pytorch" / "config.yaml"
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    """Resident set size of this process, MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


class RssPerTrial(logging.Handler):
    """Samples RSS each time the tuner logs a finished trial."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("trial "):
            self.samples.append(rss_mib())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--objective", default="size", help="size (cheap) or performance")
    parser.add_argument("--max-growth", type=float, default=0.05,
                        help="MiB per trial the second half may grow by (default 0.05)")
    args = parser.parse_args()
    from tunekit import api, config

    sampler = RssPerTrial()
    logger = logging.getLogger("tunekit")
    logger.addHandler(sampler)
    logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as workspace:
        spec = config.load(EXAMPLE, [
            "tuning.strategy=random", f"tuning.objective={args.objective}",
            "tuning.exit_policy.timeout=1000000", f"tuning.exit_policy.max_trials={args.trials}",
            f"tuning.workspace.path={workspace}"])
        started = time.perf_counter()
        result = api.tune_config(spec)
        wall = time.perf_counter() - started
    samples = sampler.samples
    if len(samples) < 4:
        print(f"only {len(samples)} trials ran ({result.status}); nothing to compare")
        return 1
    print(f"{len(samples)} trials ({result.status}) in {wall:.0f} s, objective {args.objective}")
    print("| after trial | RSS MiB |\n|---|---|")
    for index in sorted({0, 9, 49, 99, 149, len(samples) - 1} & set(range(len(samples)))):
        print(f"| {index + 1} | {samples[index]:.1f} |")
    half = len(samples) // 2
    growth = samples[-1] - samples[half]
    per_trial = growth / (len(samples) - half)
    print(f"growth over the second half (trials {half + 1}..{len(samples)}): {growth:+.1f} MiB "
          f"({per_trial:+.3f} MiB/trial); peak {max(samples):.1f} MiB")
    passed = per_trial <= args.max_growth
    print(f"{'PASS' if passed else 'FAIL'}  RSS growth {per_trial:+.3f} MiB/trial over the "
          f"second half (≤ {args.max_growth} MiB/trial)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
