"""Graph optimization stays inside the plugin boundary (docs/architecture.md).

The core (``tunekit/graph/`` and ``tunekit/benchmark/`` included) imports no framework and no
plugin module: framework code is reached through the adaptor interface, strategies and
objectives through the entry points. Read from the source, so the check imports nothing it checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tunekit

ROOT = Path(tunekit.__file__).parent
#: what a core module must not import: frameworks, and plugins by module name
FORBIDDEN = ("torch", "tensorflow", "keras", "onnx", "onnxruntime", "tunekit.adaptors",
             "tunekit.strategies", "tunekit.objectives", "tunekit.metrics")
#: the built-in plugins' packages, and the contract suites shipped for plugin authors
PLUGIN_PACKAGES = ("adaptors", "strategies", "objectives", "metrics", "testing")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_the_core_imports_no_framework_and_no_plugin() -> None:
    """Every module outside the plugin packages (and ``testing``, whose contract suites run
    real adaptors): ``graph/`` and ``benchmark/`` among them."""
    offenders = {f"{path.relative_to(ROOT)}: {name}" for path in sorted(ROOT.rglob("*.py"))
                 if path.relative_to(ROOT).parts[0] not in PLUGIN_PACKAGES
                 for name in _imports(path) if _forbidden(name)}
    assert not offenders, sorted(offenders)


def test_the_amp_strategy_is_an_entry_point_among_the_strategies() -> None:
    from tunekit import plugins
    from tunekit.strategy import Strategy

    cls = plugins.load("tunekit.strategies", "amp")
    assert issubclass(cls, Strategy) and cls.__module__ == "tunekit.strategies.amp"


def test_save_optimized_defaults_to_the_models_own_save(tmp_path: Path) -> None:
    """Graph results that save themselves (TF frozen graphs, ONNX models) need no override; any
    other model is refused in one line naming the adaptor and the model's type."""
    from tunekit.errors import NotSupportedError
    from tunekit.testing import FakeAdaptor

    class SavesItself:
        def save(self, path: Path) -> None:
            path.write_text("saved")

    FakeAdaptor().save_optimized(SavesItself(), tmp_path / "m")
    assert (tmp_path / "m").read_text() == "saved"
    with pytest.raises(NotSupportedError, match="FakeAdaptor cannot save a dict"):
        FakeAdaptor().save_optimized({}, tmp_path / "n")
