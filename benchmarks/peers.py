"""The peer tools' environments, built by the benchmarks themselves on first use.

Each peer runs in its own virtual environment under ``$TUNEKIT_PEERS_OUT`` (default
``~/.cache/tunekit-peers``), so its pins (Intel Neural Compressor 2.6 wants an older
setuptools) never touch tunekit's. An environment is built once, marked ready, and reused:

    python benchmarks/peers.py inc2      # build (or check) one now
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: environment name → the packages installed after ``torch==2.13.0`` (CPU)
PEERS = {
    "inc2": ("neural-compressor==2.6", "setuptools<81", "six", "tqdm", "scikit-learn", "scipy"),
}
TORCH = "torch==2.13.0"


def peers_out() -> Path:
    default = Path.home() / ".cache" / "tunekit-peers"
    return Path(os.environ.get("TUNEKIT_PEERS_OUT") or default)


def python_of(name: str) -> Path | None:
    """The python of environment ``name``, building it first if it is not ready; None (with the
    reason printed) when it cannot be built."""
    venv = peers_out() / f"venv-{name}"
    python = venv / "bin" / "python"
    if python.exists() and (venv / ".ready").exists():
        return python
    print(f"peer: building {venv} ({', '.join(PEERS[name])}; the first time takes minutes)",
          flush=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "-q", TORCH],
             [str(python), "-m", "pip", "install", "-q", *PEERS[name]]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
            print(f"peer: {' '.join(step[:4])} … failed (exit {done.returncode}):\n{tail}")
            return None
    (venv / ".ready").touch()
    return python


if __name__ == "__main__":
    for wanted in sys.argv[1:] or list(PEERS):
        found = python_of(wanted)
        print(f"{wanted}: {found or 'not available'}")
        if found is None:
            sys.exit(1)
