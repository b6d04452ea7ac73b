"""TableAdaptor: strategies driven by a recorded table behave exactly as on the live workload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunekit.compare.cache import EvaluationCache
from tunekit.criterion import AccuracyCriterion
from tunekit.history import Trial, TrialState
from tunekit.space import OpKey, OpRule
from tunekit.strategies.basic import BasicStrategy
from tunekit.strategies.random import RandomStrategy
from tunekit.testing import FakeAdaptor, FakeModel, TableAdaptor, run_strategy

OPS = [OpKey("conv1", "Conv2d"), OpKey("conv2", "Conv2d"), OpKey("fc", "Linear")]
CRITERION = AccuracyCriterion(absolute=0.0)


def live() -> FakeAdaptor:
    """A small workload: int8 at its default item values, bf16 or fp32 per op (27 configs)."""
    full = FakeAdaptor(ops=OPS).capabilities(None)
    rules = [OpRule(type=t, restrict={"scheme": ("asym",), "granularity": ("per_channel",),
                                      "algorithm": ("minmax",)}) for t in ("Conv2d", "Linear")]
    return FakeAdaptor(ops=full.restrict(rules), base_accuracy=0.998, drops={"conv1": 0.2},
                       bf16_drops={"fc": 0.001})


def tabulate(adaptor: FakeAdaptor, keep=lambda config: True) -> TableAdaptor:
    space = adaptor.capabilities(None)
    table = {c: (adaptor.accuracy(c), adaptor.latency(FakeModel(c)))
             for c in space.iter_configs() if keep(c)}
    return TableAdaptor(space, table, (adaptor.base_accuracy, adaptor.latency(FakeModel())))


@pytest.mark.parametrize("strategy", [BasicStrategy(), RandomStrategy()], ids=["basic", "random"])
def test_recorded_table_reproduces_the_live_run(strategy) -> None:
    source = live()
    table = tabulate(source)
    space = source.capabilities(None)
    recorded = run_strategy(strategy, space, table.evaluate, CRITERION, seed=7)
    measured = run_strategy(strategy, space, source.evaluate, CRITERION, seed=7)
    assert recorded.proposals == measured.proposals
    assert [t.metric for t in recorded.history] == [t.metric for t in measured.history]
    assert recorded.status == measured.status == "met"


def test_a_config_missing_from_the_table_fails_its_trial() -> None:
    source = live()
    default = source.capabilities(None).default()
    table = tabulate(source, keep=lambda c: c == default)
    run = run_strategy(BasicStrategy(), table.capabilities(None), table.evaluate, CRITERION,
                       baseline=source.base_accuracy)
    failed = [t for t in run.history if t.failed]
    assert failed and "is not in the table" in (failed[0].error or "")
    assert run.history.trials[0].metric == pytest.approx(0.798)


def test_rows_outside_the_space_are_refused() -> None:
    other = FakeAdaptor(ops=[OpKey("x", "Linear")]).capabilities(None)
    with pytest.raises(ValueError, match="not configs of the space"):
        TableAdaptor(live().capabilities(None), {other.default(): (1.0, 1.0)}, (1.0, 1.0))


def test_from_a_compare_cache_and_a_space_file(tmp_path: Path) -> None:
    source = live()
    space = source.capabilities(None)
    cache = EvaluationCache(tmp_path / "evals.json")
    for number, config in enumerate(space.iter_configs()):
        latency = source.latency(FakeModel(config))
        cache.put(Trial(number, config, TrialState.COMPLETE, metric=source.accuracy(config),
                        details={"performance": latency}))
    cache.save()
    (tmp_path / "space.json").write_text(json.dumps(space.to_dict()))
    table = TableAdaptor.from_files(tmp_path / "evals.json", tmp_path / "space.json")
    assert table.capabilities(None) == space
    assert table.base[0] == pytest.approx(source.accuracy(space.uniform("fp32")))
    for config in list(space.iter_configs())[:5]:
        assert table.accuracy(config) == pytest.approx(source.accuracy(config))
        assert table.latency(FakeModel(config)) == pytest.approx(source.latency(FakeModel(config)))
