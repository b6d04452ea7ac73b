"""A config as its changes from a reference config, compact enough to keep for every trial.

``result.json`` keeps every trial for report.html. Whole configs would repeat every op per
trial: after op-type tuning of a 70-Linear encoder, each later trial differs from the default in
all 70 ops, and ~80 such trials made a 1 MB file. Changes are therefore grouped by op config,
``{"precision=int8,approach=static,...": [op names]}``, with each op's type listed once
(``op_types``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tunekit.space import OpConfig, OpKey, QuantConfig


def encode(config: QuantConfig, reference: QuantConfig | None) -> dict[str, list[str]]:
    """The ops of ``config`` that differ from ``reference`` (all of them without one), as op
    config (``key=value,...``) → op names."""
    groups: dict[str, list[str]] = {}
    for op, op_config in config.ops.items():
        if reference is None or reference.ops.get(op) != op_config:
            key = ",".join(f"{k}={v}" for k, v in op_config.to_dict().items())
            groups.setdefault(key, []).append(op.name)
    return groups


def decode(groups: Mapping[str, Sequence[str]], types: Mapping[str, str]) -> QuantConfig:
    """The changes :func:`encode` wrote, as a partial config; ``types``: op name → type."""
    return QuantConfig({OpKey(name, types[name]): OpConfig.from_dict(
        dict(item.split("=", 1) for item in key.split(",")))
        for key, names in groups.items() for name in names})


def op_types(configs: Sequence[QuantConfig]) -> dict[str, str]:
    """Op name → type over ``configs``: what :func:`decode` needs."""
    return {op.name: op.type for config in configs for op in config.ops}


__all__ = ["decode", "encode", "op_types"]
