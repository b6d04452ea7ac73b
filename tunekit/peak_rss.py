"""Peak resident memory of a model's inference, measured in a fresh child process (Linux: /proc).

Why a child: the tuning process's resident set holds the FP32 model, earlier candidates and
whatever the allocator kept, and its high-water mark (``VmHWM``) only ever grows, so nothing
measured in it isolates one candidate. Each adaptor writes its model and inputs to files and
hands :func:`run_child` a short script that loads and runs them in its own framework; the script
calls :func:`reset_peak`, :func:`status` and :func:`print_peak` from here, so the /proc reading
and the parent's side of the exchange exist once for every adaptor. Stdlib only: a child imports
its framework and nothing else of weight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tunekit.errors import NotSupportedError, TrialError

CLEAR_REFS = Path("/proc/self/clear_refs")

#: Run first in the child: the parent's import path (so the child imports the same tunekit and
#: model code), passed as the first argument and removed, so the script sees only its own.
_PREAMBLE = "import json, sys\nsys.path[:0] = json.loads(sys.argv.pop(1))\n"


def status(key: str) -> int:
    """A ``/proc/self/status`` figure in bytes (``VmRSS``: now, ``VmHWM``: the high-water mark)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def reset_peak() -> None:
    """Reset this process's high-water mark to its current resident set (clear_refs 5)."""
    with open(CLEAR_REFS, "w") as f:
        f.write("5")


def print_peak(before: int) -> None:
    """In the child: report the high-water mark above ``before`` (the RSS before the model) as
    the last line of its output, which :func:`run_child` reads."""
    print(json.dumps({"peak": status("VmHWM") - before}))


def check_supported() -> None:
    """Refuse, before any file is written, where /proc cannot reset the high-water mark."""
    if not CLEAR_REFS.exists():
        raise NotSupportedError("measuring peak memory needs Linux's /proc/self/clear_refs")


def run_child(script: str, args: Sequence[str], timeout: float) -> int:
    """Run ``script`` with ``args`` (``sys.argv[1:]``) in a fresh interpreter; the peak bytes it
    reported through :func:`print_peak`. A child that fails fails the trial with its last line."""
    command = [sys.executable, "-c", _PREAMBLE + script,
               json.dumps([p for p in sys.path if p]), *args]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if run.returncode != 0:
        last = run.stderr.strip().splitlines()[-1:] or [f"exit status {run.returncode}"]
        raise TrialError(f"measuring memory in a fresh process failed: {last[0]}")
    return int(json.loads(run.stdout.strip().splitlines()[-1])["peak"])
