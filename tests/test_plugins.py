from __future__ import annotations

import re

import pytest

from tunekit import plugins
from tunekit.errors import PluginError
from tunekit.strategy import Strategy

GREEDY = """
from tunekit import Strategy

class Greedy(Strategy):
    def __init__(self, *, fallback: str = "fp32") -> None:
        self.fallback = fallback

    def propose(self, ctx):
        yield ctx.space.default()
"""


def test_builtins_are_listed_with_their_distribution() -> None:
    text = plugins.describe()
    for group in plugins.GROUPS:
        assert f"{group}:" in text
    assert re.search(r"^  basic +tunekit\.strategies\.basic:BasicStrategy  \[tunekit ", text, re.MULTILINE)
    assert "pytorch" in plugins.names("tunekit.adaptors")


def test_third_party_plugin_is_found_and_created(install_dist) -> None:
    install_dist("tunekit-greedy", "[tunekit.strategies]\ngreedy = greedy_mod:Greedy\n",
                 {"greedy_mod": GREEDY})
    assert "greedy" in plugins.names("tunekit.strategies")
    assert "tunekit-greedy 1.0" in plugins.describe()
    strategy = plugins.create("tunekit.strategies", "greedy", {"fallback": "bf16"})
    assert isinstance(strategy, Strategy) and strategy.fallback == "bf16"


def test_unknown_name_lists_installed() -> None:
    with pytest.raises(PluginError, match=r"unknown strategies plugin 'bayes'; installed: .*basic"):
        plugins.load("tunekit.strategies", "bayes")


def test_same_name_from_two_distributions_names_both(install_dist) -> None:
    install_dist("dist-a", "[tunekit.strategies]\ngreedy = greedy_a:Greedy\n", {"greedy_a": GREEDY})
    install_dist("dist-b", "[tunekit.strategies]\ngreedy = greedy_b:Greedy\n", {"greedy_b": GREEDY})
    with pytest.raises(PluginError, match="dist-a 1.0.*dist-b 1.0"):
        plugins.load("tunekit.strategies", "greedy")


def test_plugin_of_wrong_base_is_rejected(install_dist) -> None:
    install_dist("bad", "[tunekit.strategies]\nnot_a_strategy = bad_mod:Thing\n",
                 {"bad_mod": "class Thing:\n    pass\n"})
    with pytest.raises(PluginError, match="is not a subclass of tunekit.strategy.Strategy"):
        plugins.load("tunekit.strategies", "not_a_strategy")


def test_plugin_that_fails_to_import_names_its_distribution(install_dist) -> None:
    install_dist("broken", "[tunekit.metrics]\nbroken = broken_mod:Metric\n",
                 {"broken_mod": "raise RuntimeError('boom')\n"})
    with pytest.raises(PluginError, match="'broken' from broken failed to load.*RuntimeError: boom"):
        plugins.load("tunekit.metrics", "broken")


def test_wrong_parameters_list_accepted_ones(install_dist) -> None:
    install_dist("tunekit-greedy", "[tunekit.strategies]\ngreedy = greedy_mod:Greedy\n",
                 {"greedy_mod": GREEDY})
    with pytest.raises(PluginError, match="rejects parameters \\['fallbak'\\].*accepts: fallback"):
        plugins.create("tunekit.strategies", "greedy", {"fallbak": "fp32"})
