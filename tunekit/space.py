"""The tuning space: which precision each op may run in, and with which quantization parameters.

Everything here is frozen and hashable so a whole-model config can key a result cache, travel to
another process as JSON, and be compared across strategies. The configs themselves (``OpKey``,
``OpConfig``, ``QuantConfig``) live in :mod:`tunekit.quant_config` and are re-exported here; this
module imports nothing else from tunekit and no framework: adaptors build a :class:`TuningSpace`
from a real model, strategies walk it, and tests build one from a literal dict.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tunekit.quant_config import INT8_ITEMS, PRECISIONS, OpConfig, OpKey, QuantConfig


@dataclass(frozen=True)
class OpRule:
    """A user rule restricting the options of matching ops.

    Exactly one of ``type``, ``name`` or ``regex`` selects ops. ``allow`` lists the precisions they
    may take; the other fields restrict int8 parameters. When several rules match one op, the most
    specific one wins (``type`` < ``regex`` < ``name``), as in torch.ao's QConfigMapping.
    """

    type: str | None = None
    name: str | None = None
    regex: str | None = None
    allow: tuple[str, ...] | None = None
    restrict: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        selectors = [s for s in ("type", "name", "regex") if getattr(self, s) is not None]
        if len(selectors) != 1:
            raise ValueError("an op rule needs exactly one of 'type', 'name' or 'regex'")
        object.__setattr__(self, "restrict", MappingProxyType(dict(self.restrict)))

    def __hash__(self) -> int:
        return hash((self.type, self.name, self.regex, self.allow,
                     tuple(sorted(self.restrict.items()))))

    @property
    def priority(self) -> int:
        return 0 if self.type is not None else 1 if self.regex is not None else 2

    @property
    def selector(self) -> str:
        if self.type is not None:
            return f"type {self.type!r}"
        return f"name {self.name!r}" if self.name is not None else f"regex {self.regex!r}"

    def matches(self, op: OpKey) -> bool:
        if self.type is not None:
            return op.type == self.type
        if self.name is not None:
            return op.name == self.name
        assert self.regex is not None
        return re.fullmatch(self.regex, op.name) is not None

    def admits(self, config: OpConfig) -> bool:
        if self.allow is not None and config.precision not in self.allow:
            return False
        return all(getattr(config, item) in values for item, values in self.restrict.items()
                   if config.precision == "int8")


@dataclass(frozen=True)
class TuningSpace:
    """Per op, the configs it may take, the default (most aggressive) first.

    Adaptors order each op's options: int8 configs first (the adaptor's preferred int8 config at
    the head), then the float precisions, the one expected to run faster first (usually bf16,
    fp32 where bf16 would be slower); fp32 is always offered. Strategies never invent configs
    outside this space.
    """

    options: Mapping[OpKey, tuple[OpConfig, ...]]

    def __post_init__(self) -> None:
        ordered = {op: tuple(opts) for op, opts in sorted(self.options.items())}
        for op, opts in ordered.items():
            if not opts:
                raise ValueError(f"{op} has no options")
        object.__setattr__(self, "options", MappingProxyType(ordered))

    def __hash__(self) -> int:
        return hash(tuple(self.options.items()))

    @property
    def ops(self) -> list[OpKey]:
        return list(self.options)

    def __len__(self) -> int:
        return len(self.options)

    def default(self) -> QuantConfig:
        """Every op at its first (most aggressive) option."""
        return QuantConfig({op: opts[0] for op, opts in self.options.items()})

    def uniform(self, precision: str) -> QuantConfig:
        """Every op at its first option of ``precision``, or its default where it has none."""
        return QuantConfig({op: next((o for o in opts if o.precision == precision), opts[0])
                            for op, opts in self.options.items()})

    def precisions(self, op: OpKey) -> list[str]:
        """The precisions ``op`` may take, in fallback order."""
        seen: list[str] = []
        for o in self.options[op]:
            if o.precision not in seen:
                seen.append(o.precision)
        return seen

    def option(self, op: OpKey, precision: str, **items: str) -> OpConfig:
        """The first option of ``op`` in ``precision`` whose int8 items equal ``items``."""
        for o in self.options[op]:
            if o.precision == precision and all(getattr(o, k) == v for k, v in items.items()):
                return o
        raise KeyError(f"{op} has no {precision} option with {items or 'default items'}; "
                       f"it has: {', '.join(map(str, self.options[op]))}")

    def has(self, op: OpKey, config: OpConfig) -> bool:
        return config in self.options.get(op, ())

    def contains(self, config: QuantConfig) -> bool:
        return set(config.ops) == set(self.options) and all(
            c in self.options[op] for op, c in config.ops.items())

    def fallbacks(self, op: OpKey) -> list[OpConfig]:
        """The float options of ``op`` in fallback order: the adaptor's faster float first
        (bf16 before fp32 where bf16 pays off and is allowed)."""
        return [o for o in self.options[op] if o.precision != "int8"]

    def alternatives(self, op: OpKey, config: OpConfig, item: str) -> list[OpConfig]:
        """The int8 options of ``op`` that differ from ``config`` in ``item``, one per value.

        Other items must match where both options set them: dynamic int8 has no scheme or
        algorithm, so static↔dynamic is an alternative of ``approach`` too.
        """
        if config.precision != "int8":
            return []
        found: dict[str, OpConfig] = {}
        for o in self.options[op]:
            value = getattr(o, item)
            if o.precision != "int8" or value is None or value == getattr(config, item) \
                    or value in found:
                continue
            if all(getattr(o, k) == getattr(config, k) or None in (getattr(o, k), getattr(config, k))
                   for k in INT8_ITEMS if k != item):
                found[value] = o
        return list(found.values())

    def size(self) -> int:
        """Number of whole-model configs in the space (may be astronomically large)."""
        total = 1
        for opts in self.options.values():
            total *= len(opts)
        return total

    def by_type(self) -> dict[str, list[OpKey]]:
        """Ops grouped by type, in op order."""
        groups: dict[str, list[OpKey]] = {}
        for op in self.options:
            groups.setdefault(op.type, []).append(op)
        return groups

    def restrict(self, rules: Sequence[OpRule]) -> TuningSpace:
        """Apply user rules; the most specific matching rule decides for each op.

        Raises ``ValueError`` naming the rule when a ``name`` rule matches no op or a rule leaves
        an op without options.
        """
        for rule in rules:
            if rule.name is not None and not any(rule.matches(op) for op in self.options):
                raise ValueError(f"op rule for {rule.selector} matches no op; tunable ops are: "
                                 + ", ".join(op.name for op in self.options))
        restricted = {}
        for op, opts in self.options.items():
            matching = [r for r in rules if r.matches(op)]
            if not matching:
                restricted[op] = opts
                continue
            rule = max(matching, key=lambda r: r.priority)
            kept = tuple(o for o in opts if rule.admits(o))
            if not kept:
                raise ValueError(f"op rule for {rule.selector} leaves {op} without options; it "
                                 f"supports: {', '.join(map(str, opts))}")
            restricted[op] = kept
        return TuningSpace(restricted)

    def unmatched(self, rules: Sequence[OpRule]) -> list[OpRule]:
        """Rules that match no op (for a warning: a type or regex rule may be model-agnostic)."""
        return [r for r in rules if not any(r.matches(op) for op in self.options)]

    def iter_configs(self) -> Iterator[QuantConfig]:
        """Every whole-model config, lazily, in lexicographic option order."""
        ops = list(self.options)

        def walk(i: int, chosen: dict[OpKey, OpConfig]) -> Iterator[QuantConfig]:
            if i == len(ops):
                yield QuantConfig(chosen)
                return
            for o in self.options[ops[i]]:
                yield from walk(i + 1, {**chosen, ops[i]: o})

        return walk(0, {})

    def to_dict(self) -> dict[str, Any]:
        return {"ops": [{"name": op.name, "type": op.type, "options": [o.to_dict() for o in opts]}
                        for op, opts in self.options.items()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuningSpace:
        return cls({OpKey(o["name"], o["type"]): tuple(OpConfig.from_dict(x) for x in o["options"])
                    for o in data["ops"]})


def int8_options(approaches: Sequence[str], schemes: Sequence[str], granularities: Sequence[str],
                 algorithms: Sequence[str],
                 activations: Sequence[str | None] = (None,)) -> list[OpConfig]:
    """The cartesian product of int8 items, first value of each item first (the default).

    Dynamic int8 has no activation calibration, so its options carry no scheme/algorithm/
    activation choice. ``activations`` stays ``(None,)`` for adaptors whose activation type
    follows from the scheme (PyTorch, TensorFlow).
    """
    configs: list[OpConfig] = []
    for approach in approaches:
        for granularity in granularities:
            if approach == "dynamic":
                configs.append(OpConfig("int8", approach, None, granularity, None))
                continue
            for scheme in schemes:
                for algorithm in algorithms:
                    configs += [OpConfig("int8", approach, scheme, granularity, algorithm, act)
                                for act in activations]
    # the head must be the first value of every item: reorder so defaults come first
    return sorted(configs, key=lambda c: (
        approaches.index(c.approach or approaches[0]), _index(algorithms, c.algorithm),
        _index(schemes, c.scheme), _index(activations, c.activation),
        granularities.index(c.granularity or granularities[0])))


def _index(values: Sequence[str | None], value: str | None) -> int:
    return values.index(value) if value is not None else 0


__all__ = ["INT8_ITEMS", "PRECISIONS", "OpConfig", "OpKey", "OpRule", "QuantConfig", "TuningSpace",
           "int8_options"]
