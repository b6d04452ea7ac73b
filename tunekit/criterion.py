"""The accuracy criterion: when is a candidate's metric good enough?"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class AccuracyCriterion:
    """Relative or absolute tolerable loss against the FP32 baseline.

    ``relative=0.01`` with ``higher_is_better`` accepts a metric ≥ baseline × (1 − 0.01);
    ``absolute=0.005`` accepts ≥ baseline − 0.005. For lower-is-better metrics (a loss, an error)
    the bound is mirrored. The loss may be 0: the candidate must then match the baseline.
    """

    relative: float | None = None
    absolute: float | None = None
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if (self.relative is None) == (self.absolute is None):
            raise ValueError("give exactly one of 'relative' or 'absolute'")
        loss = self.loss
        if not math.isfinite(loss) or loss < 0:
            raise ValueError(f"the tolerable loss must be a finite number ≥ 0, got {loss}")

    @property
    def loss(self) -> float:
        return self.relative if self.relative is not None else self.absolute  # type: ignore[return-value]

    @property
    def kind(self) -> str:
        return "relative" if self.relative is not None else "absolute"

    def target(self, baseline: float) -> float:
        """The worst metric value that still meets the goal."""
        delta = abs(baseline) * self.loss if self.relative is not None else self.loss
        return baseline - delta if self.higher_is_better else baseline + delta

    def accepts(self, metric: float, baseline: float) -> bool:
        if not math.isfinite(metric):
            return False
        # a tiny tolerance so that a candidate equal to the baseline passes despite float noise
        target, eps = self.target(baseline), 1e-12 * max(1.0, abs(baseline))
        return metric >= target - eps if self.higher_is_better else metric <= target + eps

    def better(self, a: float, b: float) -> bool:
        """Whether metric ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b

    def describe(self, baseline: float) -> str:
        sign = "≥" if self.higher_is_better else "≤"
        loss = f"{self.loss:.2%} relative" if self.relative is not None else f"{self.loss:g} absolute"
        return f"baseline {baseline:.4f}, tolerable loss {loss} → target {sign} {self.target(baseline):.4f}"
