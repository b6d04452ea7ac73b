"""The Pareto front of passing trials, and objective details stored with trials."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from test_tuner import DATA, conv1_culprit, make_spec

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.evaluate import Evaluator
from tunekit.history import Trial, TrialState
from tunekit.metrics.topk import TopK
from tunekit.objective import Objective
from tunekit.pareto import pareto_front
from tunekit.space import QuantConfig
from tunekit.strategies.basic import BasicStrategy
from tunekit.testing import FakeModel, ModelledLatency
from tunekit.tuner import Parts, Tuner


def trial(number: int, metric: float, latency: float, size: float, accepted: bool = True) -> Trial:
    return Trial(number, distinct_config(number), TrialState.COMPLETE, metric=metric, accepted=accepted,
                 details={"latency": latency, "size": size})


def distinct_config(number: int) -> Any:
    """A stand-in config per trial number (the front counts one config once; it only compares
    configs for equality)."""
    return (QuantConfig.from_list([]), number)


def test_front_keeps_only_undominated_passing_trials():
    trials = [trial(0, 0.99, 10.0, 4.0), trial(1, 0.98, 5.0, 4.0), trial(2, 0.98, 6.0, 4.0),
              trial(3, 0.97, 5.0, 1.0), trial(4, 0.90, 1.0, 1.0, accepted=False),
              trial(5, 0.99, 10.0, 4.0)]
    front = pareto_front(trials, {"latency": "minimize", "size": "minimize"}, True)
    front_again = pareto_front([*trials, trials[1]], {"latency": "minimize", "size": "minimize"}, True)
    assert len(front_again) == 4   # a config seen twice is one point
    # 2 is dominated by 1; 4 fails the goal; 5 ties with 0 and neither dominates the other
    assert [t.number for t in front] == [0, 1, 3, 5]
    maximize = pareto_front(trials, {"latency": "maximize"}, True)
    assert [t.number for t in maximize] == [0, 5]
    lower_metric = pareto_front(trials, {"latency": "minimize"}, False)
    assert [t.number for t in lower_metric] == [3]   # 0.97 at 5.0 beats 0.98 at 5.0


class Throughput(Objective):
    """A cheap objective to maximize that also reports a detail."""

    direction = "maximize"
    costly = False

    def measure(self, adaptor: Adaptor, model: Any, data: Iterable[DataBatch]) -> float:
        self._latency = adaptor.latency(model)  # type: ignore[attr-defined]
        return 1.0 / self._latency

    def details(self) -> Mapping[str, float]:
        return {"latency": self._latency}


def test_tuning_stores_details_and_reports_the_front(tmp_path: Path):
    adaptor = conv1_culprit()
    spec = make_spec(tmp_path, exit_policy={"timeout": 60, "max_trials": 6})
    parts = Parts(spec, adaptor, FakeModel(), DATA, Evaluator(adaptor, DATA, TopK()),
                  BasicStrategy(), [("latency", ModelledLatency(), 0.5),
                                    ("speed", Throughput(), 0.5)])
    result = Tuner(parts).run()
    measured = [t for t in result.trials if t.details]
    assert measured and all(t.details["speed.latency"] == t.details["latency"] for t in measured)
    assert result.pareto_front and all(t.accepted for t in result.pareto_front)
    summary = json.loads((tmp_path / "ws" / "result.json").read_text())
    assert [p["trial"] for p in summary["pareto_front"]] == [t.number for t in result.pareto_front]
    assert summary["pareto_front"][0]["ops"]
    assert "## Pareto front of passing trials" in (tmp_path / "ws" / "report.md").read_text()
