"""Every built-in strategy except basic (tested in test_basic.py) passes the shipped contract."""

from __future__ import annotations

import pytest

from tunekit.strategies.bayesian import BayesianStrategy
from tunekit.strategies.conservative import ConservativeStrategy
from tunekit.strategies.exhaustive import ExhaustiveStrategy
from tunekit.strategies.hawq import HAWQStrategy
from tunekit.strategies.mse import MSEStrategy
from tunekit.strategies.mse_v2 import MSEv2Strategy
from tunekit.strategies.random import RandomStrategy
from tunekit.strategies.tpe import TPEStrategy
from tunekit.strategy import Strategy
from tunekit.testing.strategy_contract import StrategyContract

CHEAP = {"mse": MSEStrategy, "mse_v2": MSEv2Strategy, "exhaustive": ExhaustiveStrategy,
         "random": RandomStrategy, "conservative": ConservativeStrategy, "hawq": HAWQStrategy}


class TestCheapStrategies(StrategyContract):
    @pytest.fixture(params=sorted(CHEAP))
    def strategy(self, request: pytest.FixtureRequest) -> Strategy:
        return CHEAP[request.param]()


class TestModelBasedStrategies(StrategyContract):
    """Each proposal refits a model, so fewer proposals are checked (termination still runs the
    small spaces to exhaustion)."""

    max_proposals = 25

    @pytest.fixture(params=["bayesian", "bayesian-batch", "tpe"])
    def strategy(self, request: pytest.FixtureRequest) -> Strategy:
        if request.param == "bayesian":
            return BayesianStrategy(candidates=50)
        if request.param == "bayesian-batch":  # constant-liar batches for distributed workers
            return BayesianStrategy(candidates=50, batch=3)
        return TPEStrategy(startup=3)
