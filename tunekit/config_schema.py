"""The config's own small schema walker: the keys each YAML section may hold, and checks of one
field's type, choice, ``module:attr`` reference, plugin name or op rule.

Every check raises :class:`~tunekit.errors.ConfigError` naming the YAML path of the field and what
is valid there (``tuning.exit_policy.max_trial: unknown key (did you mean 'max_trials'?)``). The
section parsers in :mod:`tunekit.config` are built from these checks alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from tunekit import plugins
from tunekit.config_spec import PluginSpec
from tunekit.errors import ConfigError, PluginError
from tunekit.space import INT8_ITEMS, PRECISIONS, OpRule

#: The keys each section (by YAML path; ``""`` is the top level) may hold.
SECTIONS: Mapping[str, tuple[str, ...]] = {
    "": ("model", "quantization", "evaluation", "tuning", "graph_optimization", "benchmark",
         "data"),
    "data": ("label_key", "pairs"),
    "model": ("framework", "path", "factory", "options"),
    "quantization": ("approach", "calibration", "op_rules", "training"),
    "quantization.calibration": ("data", "sampling_size"),
    "evaluation": ("data", "metric", "eval_func", "early_reject"),
    "tuning": ("strategy", "accuracy_criterion", "objective", "exit_policy", "random_seed",
               "workspace", "storage", "study", "workers", "heartbeat"),
    "tuning.accuracy_criterion": ("relative", "absolute", "higher_is_better"),
    "tuning.exit_policy": ("timeout", "max_trials", "trial_timeout", "failure_share"),
    "tuning.workspace": ("path", "resume"),
    "graph_optimization": ("precisions", "passes"),
    "benchmark": ("batch_sizes", "warmup", "iterations", "rounds", "threads", "instances",
                  "cores_per_instance", "processes"),
}


def join(path: str, key: str) -> str:
    """The YAML path of ``key`` inside the section at ``path``, as errors name it."""
    return f"{path}.{key}" if path else key


def section(raw: Any, path: str) -> dict[str, Any]:
    """The section at ``path`` as a dict ({} when absent), refusing unknown keys with the
    closest valid one, since a misspelt key would otherwise be silently ignored."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(path, f"must be a mapping with keys {', '.join(SECTIONS[path])}, "
                                f"got {type(raw).__name__} {raw!r}")
    for key in raw:
        if key not in SECTIONS[path]:
            close = difflib.get_close_matches(str(key), SECTIONS[path], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(join(path, str(key)),
                              f"unknown key{hint}; valid keys: {', '.join(SECTIONS[path])}")
    return raw


def typed(raw: Mapping[str, Any], key: str, path: str, kind: type | tuple[type, ...],
           default: Any = None, required: bool = False) -> Any:
    """``raw[key]`` checked against ``kind`` (an int is a valid float, a bool is not an int), or
    ``default`` when absent or null."""
    where = join(path, key)
    if key not in raw or raw[key] is None:
        if required:
            raise ConfigError(where, "is required")
        return default
    value = raw[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(where, f"must be {names}, got {type(value).__name__} {value!r}")
    return value


def choice(value: str, choices: Sequence[str], where: str) -> str:
    """``value`` if it is one of ``choices``; the error lists them."""
    if value not in choices:
        raise ConfigError(where, f"{value!r} is not one of {', '.join(choices)}")
    return value


def reference(raw: Mapping[str, Any], key: str, path: str, required: bool = False) -> str | None:
    """A ``package.module:attribute`` reference to user code: only named here, imported later
    (:mod:`tunekit.references`)."""
    ref = typed(raw, key, path, str, required=required)
    if ref is not None and (":" not in ref or ref.startswith(":") or ref.endswith(":")):
        raise ConfigError(join(path, key), f"{ref!r} is not a 'package.module:attribute' reference")
    return ref


def plugin(raw: Any, where: str, group: str, check_installed: bool) -> PluginSpec:
    """A plugin given as a bare name or as ``{name: ..., <kwargs>}`` (``weight`` for objectives)."""
    if isinstance(raw, str):
        name, params, weight = raw, {}, 1.0
    elif isinstance(raw, dict):
        params = dict(raw)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(join(where, "name"), "is required and must be a plugin name")
        weight = params.pop("weight", 1.0) if group == "tunekit.objectives" else 1.0
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ConfigError(join(where, "weight"), f"must be a number > 0, got {weight!r}")
    else:
        raise ConfigError(where, f"must be a plugin name or {{name: ..., ...}}, got {raw!r}")
    if check_installed:
        try:
            plugins.load(group, name)
        except PluginError as exc:
            raise ConfigError(join(where, "name") if isinstance(raw, dict) else where,
                              str(exc)) from exc
    return PluginSpec(name, params, float(weight))


def op_rule(raw: Any, where: str) -> OpRule:
    """One ``quantization.op_rules`` entry: exactly one selector, then what it allows."""
    if not isinstance(raw, dict):
        raise ConfigError(where, f"must be a mapping like {{type: Linear, allow: [int8, fp32]}}, "
                                 f"got {raw!r}")
    valid = ("type", "name", "regex", "allow", *INT8_ITEMS)
    for key in raw:
        if key not in valid:
            raise ConfigError(join(where, str(key)), f"unknown key; valid keys: {', '.join(valid)}")
    selectors = [k for k in ("type", "name", "regex") if k in raw]
    if len(selectors) != 1:
        raise ConfigError(where, "needs exactly one of 'type', 'name' or 'regex' to select ops")
    selector = selectors[0]
    if not isinstance(raw[selector], str):
        raise ConfigError(join(where, selector), "must be a string")
    if selector == "regex":
        import re

        try:
            re.compile(raw["regex"])
        except re.error as exc:
            raise ConfigError(join(where, "regex"), f"is not a valid regular expression: {exc}") from exc
    allow = None
    if "allow" in raw:
        allow = tuple(string_list(raw["allow"], join(where, "allow"), PRECISIONS))
    restrict = {item: tuple(string_list(raw[item], join(where, item), INT8_ITEMS[item]))
                for item in INT8_ITEMS if item in raw}
    return OpRule(**{selector: raw[selector]}, allow=allow, restrict=restrict)


def string_list(raw: Any, where: str, choices: Sequence[str]) -> list[str]:
    """A non-empty list drawn from ``choices``; a single name is a list of one."""
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ConfigError(where, f"must be a non-empty list drawn from {', '.join(choices)}")
    for v in values:
        choice(v, choices, where)
    return values
