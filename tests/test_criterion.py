"""AccuracyCriterion: when a candidate's metric meets the goal, in both metric directions."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tunekit.criterion import AccuracyCriterion


def test_relative_loss_scales_with_the_baseline() -> None:
    criterion = AccuracyCriterion(relative=0.01)
    assert criterion.target(0.8) == pytest.approx(0.792)
    assert criterion.accepts(0.7921, 0.8) and not criterion.accepts(0.7919, 0.8)
    assert criterion.kind == "relative" and criterion.loss == 0.01


def test_absolute_loss_is_a_fixed_margin() -> None:
    criterion = AccuracyCriterion(absolute=0.005)
    assert criterion.target(0.8) == pytest.approx(0.795)
    assert criterion.accepts(0.7951, 0.8) and not criterion.accepts(0.7949, 0.8)
    assert criterion.kind == "absolute"


def test_lower_is_better_mirrors_the_bound() -> None:
    relative = AccuracyCriterion(relative=0.1, higher_is_better=False)
    assert relative.target(2.0) == pytest.approx(2.2)
    assert relative.accepts(2.19, 2.0) and not relative.accepts(2.21, 2.0)
    assert relative.accepts(1.0, 2.0)  # a lower loss than the baseline is fine
    absolute = AccuracyCriterion(absolute=0.5, higher_is_better=False)
    assert absolute.accepts(2.5, 2.0) and not absolute.accepts(2.51, 2.0)


def test_relative_loss_uses_the_baseline_magnitude_for_negative_metrics() -> None:
    criterion = AccuracyCriterion(relative=0.1)  # e.g. a negative log-likelihood score
    assert criterion.target(-2.0) == pytest.approx(-2.2)
    assert criterion.accepts(-2.1, -2.0) and not criterion.accepts(-2.3, -2.0)


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_zero_loss_accepts_the_baseline_despite_float_noise(higher_is_better: bool) -> None:
    criterion = AccuracyCriterion(absolute=0.0, higher_is_better=higher_is_better)
    baseline = 0.1 + 0.2  # 0.30000000000000004
    assert criterion.accepts(0.3, baseline) and criterion.accepts(baseline, baseline)
    worse = 0.299 if higher_is_better else 0.301
    assert not criterion.accepts(worse, baseline)
    assert AccuracyCriterion(relative=0.0).accepts(0.998, 0.998)


def test_non_finite_metrics_are_never_accepted() -> None:
    criterion = AccuracyCriterion(relative=0.5)
    assert not criterion.accepts(math.nan, 0.9)
    assert not criterion.accepts(math.inf, 0.9)


def test_better_is_strict_and_direction_aware() -> None:
    up, down = AccuracyCriterion(relative=0.01), AccuracyCriterion(relative=0.01,
                                                                   higher_is_better=False)
    assert up.better(0.9, 0.8) and not up.better(0.8, 0.9) and not up.better(0.8, 0.8)
    assert down.better(0.8, 0.9) and not down.better(0.9, 0.8) and not down.better(0.8, 0.8)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"),
    ({"relative": 0.01, "absolute": 0.01}, "exactly one"),
    ({"relative": -0.01}, "finite number ≥ 0"),
    ({"absolute": math.nan}, "finite number ≥ 0"),
])
def test_invalid_criteria_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AccuracyCriterion(**kwargs)


def test_describe_states_the_target() -> None:
    text = AccuracyCriterion(relative=0.01).describe(0.9)
    assert "1.00% relative" in text and "≥ 0.8910" in text
    assert "≤ 0.9100" in AccuracyCriterion(absolute=0.01, higher_is_better=False).describe(0.9)
