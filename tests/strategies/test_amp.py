"""The ``amp`` strategy passes the strategy contract every shipped strategy passes."""

from __future__ import annotations

import pytest

from tunekit.strategies.amp import AMPStrategy
from tunekit.strategy import Strategy
from tunekit.testing.strategy_contract import StrategyContract


class TestAMPStrategyContract(StrategyContract):
    @pytest.fixture
    def strategy(self) -> Strategy:
        return AMPStrategy()
