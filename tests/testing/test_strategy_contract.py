"""The strategy contract catches the faults it promises to catch."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tunekit.errors import TrialError
from tunekit.space import QuantConfig
from tunekit.strategy import Strategy, TuneContext
from tunekit.testing.strategy_contract import CASES, StrategyContract


class Walk(Strategy):
    """A well-behaved strategy: every config of the space once, in order."""

    def __init__(self, *, limit: int = 1000) -> None:
        self.limit = limit

    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        for number, config in enumerate(ctx.space.iter_configs()):
            if number == self.limit:
                return
            yield config


class TestWalkPassesTheContract(StrategyContract):
    @pytest.fixture
    def strategy(self) -> Strategy:
        return Walk(limit=200)


class StoresDerivedState(Walk):
    def __init__(self, *, limit: int = 1000) -> None:
        super().__init__(limit=limit)
        self.seen: set[QuantConfig] = set()


class GlobalRandom(Walk):
    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        configs = list(ctx.space.iter_configs())
        while True:
            yield random.choice(configs)


class Stutters(Walk):
    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        for config in super().propose(ctx):
            yield config
            yield config


class Endless(Walk):
    def propose(self, ctx: TuneContext) -> Iterator[QuantConfig]:
        while True:
            yield from ctx.space.iter_configs()


class Positional(Walk):
    def __init__(self, limit: int = 1000) -> None:  # not keyword-only
        super().__init__(limit=limit)


@pytest.mark.parametrize("strategy, check, message", [
    (StoresDerivedState(), "test_constructor_only_stores_its_keyword_parameters",
     "differ from parameters"),
    (Positional(), "test_constructor_only_stores_its_keyword_parameters", "keyword-only"),
    (GlobalRandom(), "test_leaves_the_context_alone", "global random state"),
    (GlobalRandom(), "test_same_proposals_for_the_same_seed", "diverged"),
    (Stutters(), "test_never_repeats_the_previous_proposal", "repeats the one before"),
    (Endless(), "test_ends_by_itself_on_a_finite_space", "still proposing"),
], ids=["derived-state", "positional", "global-random", "nondeterministic", "stutter", "endless"])
def test_contract_rejects_faulty_strategies(strategy: Strategy, check: str, message: str) -> None:
    method = getattr(StrategyContract(), check)
    arguments = () if "constructor" in check else (
        "small-never" if "ends" in check else "small-hashed",)
    with pytest.raises(AssertionError, match=message):
        method(strategy, *arguments)


@pytest.mark.parametrize("name", ["small-hashed", "digits"])
def test_cases_with_a_goal_separate_int8_from_fp32(name: str) -> None:
    case = CASES[name]()
    accepts = [case.criterion.accepts(case.accuracy_fn(case.space.uniform(p)), 1.0)
               for p in ("int8", "fp32")]
    assert accepts == [False, True]
    assert case.accuracy_fn(case.space.default()) == case.accuracy_fn(case.space.default())


def test_the_failing_case_fails_some_configs_only() -> None:
    case = CASES["small-failing"]()
    outcomes: list[float | None] = []
    for config in case.space.iter_configs():
        try:
            outcomes.append(case.accuracy_fn(config))
        except TrialError:
            outcomes.append(None)
    assert 0 < outcomes.count(None) < len(outcomes) / 2
