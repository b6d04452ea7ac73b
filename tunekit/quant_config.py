"""One point of the tuning space: an op (:class:`OpKey`), the precision and int8 parameters it
runs with (:class:`OpConfig`), and a whole-model config (:class:`QuantConfig`).

Frozen and hashable so a config can key a result cache, travel to another process as JSON, and be
compared across strategies. A leaf module (stdlib only): :mod:`tunekit.space` builds the space of
these configs on top of it and re-exports every name, so ``tunekit.space.QuantConfig`` stays the
public spelling.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

#: Precisions in the order a fallback walks them: fastest first, the FP32 reference last.
PRECISIONS: tuple[str, ...] = ("int8", "bf16", "fp32")

#: The int8 parameters a strategy may tune per op (the "tuning items"), with the values tunekit knows.
INT8_ITEMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "approach": ("static", "dynamic"),
        "scheme": ("asym", "sym"),  # activation quantization scheme
        "granularity": ("per_channel", "per_tensor"),  # weight quantization granularity
        "algorithm": ("minmax", "histogram", "percentile", "entropy"),  # activation calibration
        "activation": ("uint8", "int8"),  # activation integer type (ONNX Runtime offers both)
    }
)


@dataclass(frozen=True, order=True)
class OpKey:
    """One tunable op of a model: its qualified name in the model and its type (class) name."""

    name: str
    type: str

    def __str__(self) -> str:
        return f"{self.name}<{self.type}>"


@dataclass(frozen=True)
class OpConfig:
    """One precision choice for one op.

    ``precision`` is ``int8``, ``bf16`` or ``fp32``. The int8 parameters are ``None`` for the float
    precisions, so two float configs of one precision are always equal.
    """

    precision: str
    approach: str | None = None
    scheme: str | None = None
    granularity: str | None = None
    algorithm: str | None = None
    activation: str | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected one of {PRECISIONS}")
        params = {item: getattr(self, item) for item in INT8_ITEMS}
        if self.precision != "int8" and any(v is not None for v in params.values()):
            raise ValueError(f"{self.precision} takes no int8 parameters, got {params}")

    def items(self) -> dict[str, str]:
        """The int8 parameters that are set, as a plain dict (empty for float precisions)."""
        return {item: v for item in INT8_ITEMS if (v := getattr(self, item)) is not None}

    def to_dict(self) -> dict[str, str]:
        return {"precision": self.precision, **self.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown op config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def __str__(self) -> str:
        if self.precision != "int8":
            return self.precision
        return "int8(" + ",".join(self.items().values()) + ")"


@dataclass(frozen=True)
class QuantConfig:
    """A whole-model config: one :class:`OpConfig` per tunable op."""

    ops: Mapping[OpKey, OpConfig]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", MappingProxyType(dict(sorted(self.ops.items()))))

    def __hash__(self) -> int:
        return hash(frozenset(self.ops.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuantConfig) and dict(self.ops) == dict(other.ops)

    def with_op(self, op: OpKey, config: OpConfig) -> QuantConfig:
        """A copy with one op's config replaced."""
        if op not in self.ops:
            raise KeyError(f"{op} is not an op of this config")
        return QuantConfig({**self.ops, op: config})

    def with_ops(self, changes: Mapping[OpKey, OpConfig]) -> QuantConfig:
        """A copy with several ops' configs replaced (one copy: group fallbacks on models with
        a thousand ops change hundreds at once)."""
        unknown = next((op for op in changes if op not in self.ops), None)
        if unknown is not None:
            raise KeyError(f"{unknown} is not an op of this config")
        return QuantConfig({**self.ops, **changes})

    def lowers(self, other: QuantConfig) -> bool:
        """Whether this config is ``other`` with some ops in a lower precision (int8 < bf16 <
        fp32) and none in a higher one: the same model with fewer ops left out of int8."""
        if self.ops.keys() != other.ops.keys():
            return False
        ranks = [(PRECISIONS.index(c.precision), PRECISIONS.index(other.ops[op].precision))
                 for op, c in self.ops.items()]
        return all(mine <= theirs for mine, theirs in ranks) and \
            any(mine < theirs for mine, theirs in ranks)

    def precision_of(self, op: OpKey) -> str:
        return self.ops[op].precision

    def ops_in(self, precision: str) -> list[OpKey]:
        return [op for op, c in self.ops.items() if c.precision == precision]

    def counts(self) -> dict[str, int]:
        """How many ops run in each precision, e.g. ``{"int8": 4, "bf16": 1}``."""
        counts: dict[str, int] = {}
        for c in self.ops.values():
            counts[c.precision] = counts.get(c.precision, 0) + 1
        return counts

    def summary(self, reference: QuantConfig | None = None) -> str:
        """A one-line description: precision counts, then the ops that differ from ``reference``."""
        text = " ".join(f"{p}×{n}" for p, n in sorted(self.counts().items(), key=_precision_rank))
        if reference is None:
            return text
        groups: dict[str, list[str]] = {}  # one change → the ops it applies to, in op order
        for op, config in self.ops.items():
            before = reference.ops.get(op)
            if before is not None and before != config:
                groups.setdefault(_change(before, config), []).append(op.name)
        if groups:
            shown = [f"{','.join(names[:3])}{f',+{len(names) - 3}' if len(names) > 3 else ''}"
                     f"→{change}" for change, names in groups.items()]
            text += " [" + "; ".join(shown[:4]) + (f"; +{len(shown) - 4} more" if len(shown) > 4 else "") + "]"
        return text

    def to_json(self) -> str:
        """Canonical JSON (sorted), stable across processes: the config's identity in the history."""
        return json.dumps(self.to_list(), sort_keys=True, separators=(",", ":"))

    def to_list(self) -> list[dict[str, str]]:
        return [{"name": op.name, "type": op.type, **c.to_dict()} for op, c in self.ops.items()]

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]]) -> QuantConfig:
        ops = {}
        for item in items:
            item = dict(item)
            op = OpKey(item.pop("name"), item.pop("type"))
            ops[op] = OpConfig.from_dict(item)
        return cls(ops)

    @classmethod
    def from_json(cls, text: str) -> QuantConfig:
        return cls.from_list(json.loads(text))


def _change(before: OpConfig, after: OpConfig) -> str:
    """How an op's config changed: the new precision, or just the int8 items that differ."""
    if before.precision != "int8" or after.precision != "int8":
        return str(after)
    return ",".join(f"{v}" for k, v in after.items().items() if before.items().get(k) != v)


def _precision_rank(item: tuple[str, int]) -> int:
    return PRECISIONS.index(item[0]) if item[0] in PRECISIONS else len(PRECISIONS)
