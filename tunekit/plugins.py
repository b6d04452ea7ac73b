"""Plugin discovery through ``importlib.metadata`` entry points.

Built-in plugins are declared in tunekit's own ``setup.cfg`` exactly as a third party declares
theirs; the core never imports a plugin module by name. Only the entry point a config names is
loaded (no autoload of every installed plugin, so one broken package cannot break start-up), and a
name offered by two distributions is an error naming both.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from tunekit.errors import PluginError

#: Entry-point group → dotted path of the base class its plugins must subclass.
GROUPS: Mapping[str, str] = {
    "tunekit.adaptors": "tunekit.adaptor:Adaptor",
    "tunekit.strategies": "tunekit.strategy:Strategy",
    "tunekit.metrics": "tunekit.metric:Metric",
    "tunekit.objectives": "tunekit.objective:Objective",
    "tunekit.passes": "tunekit.graph.pipeline:GraphPass",
}


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin: its name, where it points, and who provides it."""

    group: str
    name: str
    value: str
    distribution: str
    version: str


def installed(group: str) -> list[PluginInfo]:
    """Every entry point of ``group`` across installed distributions, sorted by name."""
    return list(_scan(_path_state()).get(group, ()))


def _path_state() -> tuple[tuple[str, int | None], ...]:
    """What the installed set depends on: ``sys.path`` and each entry's modification time,
    which changes when a package is installed into or removed from it."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, None))
    return tuple(state)


@functools.lru_cache(maxsize=2)
def _scan(state: tuple[tuple[str, int | None], ...]) -> dict[str, list[PluginInfo]]:
    """Every tunekit entry point by group, scanned once per state of ``sys.path``: a scan
    parses installed distributions' metadata, ~10 ms each, and one tuning loads six plugins."""
    found: dict[str, list[PluginInfo]] = {}
    seen: set[tuple[str, str, str]] = set()
    for dist in metadata.distributions():
        matching = [ep for ep in dist.entry_points if ep.group in GROUPS]
        if not matching:  # parsing every distribution's METADATA cost ~30 ms a lookup
            continue
        dist_name = dist.metadata["Name"] or "?"
        for ep in matching:
            # an editable install can list one distribution twice; count it once
            if (ep.group, dist_name, ep.name) not in seen:
                seen.add((ep.group, dist_name, ep.name))
                found.setdefault(ep.group, []).append(
                    PluginInfo(ep.group, ep.name, ep.value, dist_name, dist.version))
    return {group: sorted(infos, key=lambda p: (p.name, p.distribution))
            for group, infos in found.items()}


def names(group: str) -> list[str]:
    return sorted({p.name for p in installed(group)})


def _short(group: str) -> str:
    return group.rsplit(".", 1)[-1]


def _import_ref(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    module = __import__(module_name, fromlist=["_"])
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load(group: str, name: str) -> type:
    """The plugin class registered as ``name`` in ``group``, checked against the group's base."""
    if group not in GROUPS:
        raise PluginError(f"unknown plugin group {group!r}; groups: {', '.join(GROUPS)}")
    matches = [p for p in installed(group) if p.name == name]
    if not matches:
        available = ", ".join(names(group)) or "none"
        raise PluginError(f"unknown {_short(group)} plugin {name!r}; installed: {available}")
    if len({p.distribution for p in matches}) > 1 or len({p.value for p in matches}) > 1:
        offered = "; ".join(f"{p.distribution} {p.version} ({p.value})" for p in matches)
        raise PluginError(f"{_short(group)} plugin {name!r} is offered by more than one "
                          f"distribution: {offered}. Uninstall one of them.")
    info = matches[0]
    try:
        cls = _import_ref(info.value)
    except Exception as exc:  # any import failure of third-party code is a plugin error
        raise PluginError(f"{_short(group)} plugin {name!r} from {info.distribution} failed to "
                          f"load ({info.value}): {type(exc).__name__}: {exc}") from exc
    base = _import_ref(GROUPS[group])
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise PluginError(f"{_short(group)} plugin {name!r} ({info.value}, from "
                          f"{info.distribution}) is not a subclass of {base.__module__}."
                          f"{base.__name__}")
    return cls


def create(group: str, name: str, params: Mapping[str, Any] | None = None) -> Any:
    """Instantiate plugin ``name`` with keyword ``params``, checked against its signature first."""
    cls = load(group, name)
    params = dict(params or {})
    signature = inspect.signature(cls)
    try:
        signature.bind(**params)
    except TypeError as exc:
        accepted = [p for p, spec in signature.parameters.items()
                    if spec.kind in (spec.KEYWORD_ONLY, spec.POSITIONAL_OR_KEYWORD)]
        raise PluginError(f"{_short(group)} plugin {name!r} rejects parameters "
                          f"{sorted(params)}: {exc}; it accepts: "
                          f"{', '.join(accepted) or 'no parameters'}") from exc
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{_short(group)} plugin {name!r}: {exc}") from exc


def describe() -> str:
    """The text of ``tunekit plugins``: each group with its plugins and their distributions."""
    lines = []
    for group in GROUPS:
        lines.append(f"{group}:")
        plugins = installed(group)
        if not plugins:
            lines.append("  (none)")
        width = max((len(p.name) for p in plugins), default=0)
        for p in plugins:
            lines.append(f"  {p.name.ljust(width)}  {p.value}  [{p.distribution} {p.version}]")
    return "\n".join(lines)
