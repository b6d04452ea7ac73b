"""A private PostgreSQL server on loopback, for the distributed tests and benchmark.

Distributed tuning is only worth testing against the database it runs on in a cluster, so the
tests start a real server (Debian's ``postgresql`` packages: ``initdb`` and ``pg_ctl``) in a temp
folder on a free port, owned by the ``postgres`` user when run as root (the server refuses to run
as root). ``TUNEKIT_TEST_POSTGRES_URL`` points the tests at a server started elsewhere instead
(``.ci/run`` starts one).

Run ``python -m tunekit.testing.postgres DIR`` to start one and print its URL (stop it with
``pg_ctl -D DIR/data stop``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Environment variable with the URL of a server to use instead of starting one.
URL_VARIABLE = "TUNEKIT_TEST_POSTGRES_URL"


def binaries() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class Server:
    """A running private server; :meth:`stop` ends it."""

    url: str
    data: Path
    bin: Path
    as_postgres: bool

    def stop(self) -> None:
        subprocess.run([*_prefix(self.as_postgres), str(self.bin / "pg_ctl"), "-D",
                        str(self.data), "-m", "immediate", "-w", "stop"],
                       check=False, capture_output=True)


def _prefix(as_postgres: bool) -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if as_postgres else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(folder: Path | None = None) -> Server:
    """initdb + pg_ctl start in ``folder`` (a new temp folder by default), trust auth on
    127.0.0.1 only, a free port; returns the server with the URL of its ``postgres`` database."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql)")
    root = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="tunekit-pg-"))
    root.mkdir(parents=True, exist_ok=True)
    as_postgres = os.geteuid() == 0
    if as_postgres:
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    run = [*_prefix(as_postgres)]
    subprocess.run([*run, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = subprocess.run([*run, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                              "-l", str(root / "server.log"), "-w", "start"],
                             capture_output=True, text=True, check=False)
    if started.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {started.stderr}{log}")
    return Server(f"postgresql://postgres@127.0.0.1:{port}/postgres", data, bin_dir, as_postgres)


if __name__ == "__main__":
    server = start(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(server.url)
