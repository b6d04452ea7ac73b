"""Shared fixtures: fake installed distributions for plugin discovery tests."""

from __future__ import annotations

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
