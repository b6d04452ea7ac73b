"""Early rejection: exact bounds, an evaluator that never rejects a passing model, the tuner's
marks, and strategies that need exact metrics getting them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunekit import config
from tunekit.adaptor import Adaptor
from tunekit.evaluate import Evaluator
from tunekit.metrics.accuracy import Accuracy
from tunekit.metrics.f1 import F1
from tunekit.metrics.topk import TopK
from tunekit.strategies.basic import BasicStrategy
from tunekit.testing import DIGITS_OPS, FakeAdaptor, FakeModel, ModelledLatency, fake_data
from tunekit.tuner import Parts, Tuner


class Replay(Adaptor):
    """Runs nothing: a 'model' is the list of (scores, labels) batches it predicts."""

    def capabilities(self, model: Any, approach: str = "static") -> Any:
        raise NotImplementedError

    def quantize(self, model: Any, config: Any, calib_data: Any) -> Any:
        raise NotImplementedError

    def predict(self, model: Any, data: Any) -> Any:
        yield from model


def batches(rng: np.random.Generator, correct: np.ndarray, size: int) -> list[tuple[Any, Any]]:
    """Score rows whose argmax is the label exactly where ``correct`` is True."""
    labels = rng.integers(0, 10, len(correct))
    scores = rng.random((len(correct), 10))
    wrong = (labels + 1 + rng.integers(0, 9, len(correct))) % 10
    winner = np.where(correct, labels, wrong)
    scores[np.arange(len(correct)), winner] = 2.0
    return [(scores[i:i + size], labels[i:i + size]) for i in range(0, len(correct), size)]


@pytest.mark.parametrize("metric", [TopK, Accuracy])
def test_bound_is_the_best_reachable_value(metric: type) -> None:
    m = metric()
    rng = np.random.default_rng(0)
    (scores, labels), = batches(rng, rng.random(30) < 0.7, 30)
    m.update(scores, labels)
    hits = m.compute() * 30
    assert m.bound(0) == pytest.approx(m.compute())
    assert m.bound(20) == pytest.approx((hits + 20) / 50)
    assert F1().bound(5) is None  # corpus-level metrics do not offer one


@pytest.mark.parametrize("seed", range(40))
def test_the_evaluator_never_rejects_a_model_that_would_pass(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = batches(rng, rng.random(97) < 0.9, 10)
    evaluator = Evaluator(Replay(), data=[0], metric=TopK())
    assert evaluator(data) is not None and evaluator.total_samples == 97  # the baseline pass
    model = batches(rng, rng.random(97) < rng.uniform(0.6, 1.0), int(rng.integers(1, 30)))
    exact = evaluator(model)
    target = float(rng.choice([exact, exact - 1 / 97, exact + 1 / 97, rng.uniform(0.5, 1.0)]))
    value = evaluator(model, reject_if=lambda bound: bound < target)
    if exact >= target:
        assert not evaluator.last_rejected and value == exact
    else:  # it may stop early; what it returns is still an upper bound of the truth
        assert value >= exact and value < target
        assert evaluator.last_rejected == (evaluator.last_samples < 97)


def test_no_rejection_before_the_size_is_known_or_when_it_changes() -> None:
    rng = np.random.default_rng(1)
    bad = batches(rng, np.zeros(40, bool), 10)
    evaluator = Evaluator(Replay(), data=[0], metric=TopK())
    evaluator(bad, reject_if=lambda b: b < 0.9)
    assert not evaluator.last_rejected  # first pass: the size is learnt, not guessed
    evaluator(bad[:2])  # a pass of another size: the data is not stable, never reject again
    evaluator(bad, reject_if=lambda b: b < 0.9)
    assert not evaluator.last_rejected and not evaluator.can_reject


# --------------------------------------------------------------------------- in the tuner

DATA = fake_data(500, 25)


def run(tmp_path: Path, early: bool, strategy: BasicStrategy, name: str) -> Any:
    raw = {"model": {"framework": "pytorch", "factory": "m:f"},
           "evaluation": {"early_reject": early},
           "tuning": {"accuracy_criterion": {"absolute": 0.0},
                      "workspace": {"path": str(tmp_path / name)}}}
    spec = config.parse(raw, check_plugins=False)
    adaptor = FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.2, "conv2": 0.01})
    evaluator = Evaluator(adaptor, DATA, TopK())
    parts = Parts(spec, adaptor, FakeModel(), DATA, evaluator, strategy,
                  [("latency", ModelledLatency(), 1.0)])
    return Tuner(parts).run()


@pytest.mark.parametrize("order", ["impact", "conservative"])
def test_tuning_with_early_rejection_takes_the_same_decisions(tmp_path: Path, order: str) -> None:
    full = run(tmp_path, False, BasicStrategy(order=order), "full")
    early = run(tmp_path, True, BasicStrategy(order=order), "early")
    assert [t.config for t in early.trials] == [t.config for t in full.trials]
    assert [t.accepted for t in early.trials] == [t.accepted for t in full.trials]
    assert early.best_trial.config == full.best_trial.config and early.met == full.met
    rejected = [t for t in early.trials if t.details.get("early_rejected")]
    if order == "conservative":  # only the goal matters there: rejected as soon as possible
        assert rejected
    exact = {t.config: t.metric for t in full.trials}
    for t in rejected:
        assert not t.accepted and t.metric >= exact[t.config]
        assert t.details["evaluated_samples"] < 500
    for t in early.trials:
        if not t.details.get("early_rejected"):
            assert t.metric == exact[t.config]
        assert "time.quantize_s" in t.details and "time.evaluate_s" in t.details


def test_early_reject_can_be_switched_off(tmp_path: Path) -> None:
    result = run(tmp_path, False, BasicStrategy(order="conservative"), "off")
    assert not any(t.details.get("early_rejected") for t in result.trials)
