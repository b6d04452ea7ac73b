"""Shared fixtures: fake installed distributions for plugin discovery tests, a PostgreSQL server,
and the environment in which the digits example runs from the CLI."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def install_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Make a real distribution visible to ``importlib.metadata``: a module plus a ``.dist-info``
    folder with ``entry_points.txt`` on ``sys.path`` — exactly what pip leaves behind."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    added: list[str] = []

    def install(name: str, entry_points: str, modules: dict[str, str]) -> Path:
        info = root / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        for module, source in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
            added.append(module)
        return root

    yield install
    for module in added:
        sys.modules.pop(module, None)


@pytest.fixture
def pip_installed(tmp_path: Path) -> Callable[[Path], dict[str, str]]:
    """pip-install a package folder into a private target, as a user would install a plugin;
    returns the environment (``PYTHONPATH``, a private example cache) to run tunekit in."""

    def install(package: Path) -> dict[str, str]:
        import os
        import subprocess

        target = tmp_path / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--target", str(target), str(package)],
                       check=True)
        return {**os.environ, "PYTHONPATH": str(target),
                "TUNEKIT_CACHE_DIR": str(tmp_path / "cache")}

    return install


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the distributed tests: ``TUNEKIT_TEST_POSTGRES_URL`` when set
    (``.ci/run`` starts one), else a private server on loopback started here when PostgreSQL is
    installed; skipped otherwise. Tests keep apart by study name."""
    import os

    from tunekit.testing import postgres

    url = os.environ.get(postgres.URL_VARIABLE)
    if url:
        yield url
        return
    if postgres.binaries() is None:
        pytest.skip(f"PostgreSQL is not installed and {postgres.URL_VARIABLE} is not set")
    server = postgres.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def example_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the digits example through the CLI in a subprocess: a private
    model cache seeded with the shipped weights (no retraining), and no progress bars."""
    cache = tmp_path / "cache"
    cache.mkdir()
    shipped = Path(__file__).resolve().parents[1] / "examples" / "digits_pytorch" / "artifacts" \
        / "digits_cnn.pt"
    if shipped.exists():
        shutil.copy(shipped, cache / shipped.name)
    return {**os.environ, "TUNEKIT_CACHE_DIR": str(cache), "TUNEKIT_PROGRESS": "0"}
