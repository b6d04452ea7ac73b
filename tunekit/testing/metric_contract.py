"""Checks every metric should pass, shipped for plugin authors (needs pytest).

Subclass :class:`MetricContract` in a test module and define three methods::

    class TestMyMetric(MetricContract):
        def make_metric(self):            return MyMetric()
        def make_batches(self, seed):     return [(preds, labels), ...]   # generated from seed
        def reference(self, preds, labels):  return trusted_implementation(preds, labels)

pytest then runs every ``test_*`` below against it. Generate the batches from the seed (random
inputs the metric's author did not pick by hand) and take the reference from an independent
implementation (scikit-learn, pycocotools, the official script), so the suite can fail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from tunekit.metric import Metric

Batches = list[tuple[Any, Any]]


class MetricContract:
    """Batching, reset and repeatability checks plus equality with a reference."""

    #: the seeds each check runs with
    seeds: Sequence[int] = (0, 1, 2)
    #: absolute tolerance against the reference and between batchings
    tolerance: float = 1e-6

    def make_metric(self) -> Metric:
        raise NotImplementedError("define make_metric() in the subclass")

    def make_batches(self, seed: int) -> Batches:
        raise NotImplementedError("define make_batches(seed) in the subclass")

    def reference(self, preds: Any, labels: Any) -> float:
        raise NotImplementedError("define reference(preds, labels) in the subclass")

    def join(self, parts: list[Any]) -> Any:
        """All batches' preds (or labels) as one batch: numpy arrays are concatenated along the
        first axis, sequences (lists of dicts or strings) chained."""
        if all(isinstance(p, np.ndarray) for p in parts):
            return np.concatenate(parts)
        return [item for part in parts for item in part]

    # ------------------------------------------------------------------------- helpers

    def _score(self, metric: Metric, batches: Batches) -> float:
        for preds, labels in batches:
            metric.update(preds, labels)
        return float(metric.compute())

    def _joined(self, batches: Batches) -> tuple[Any, Any]:
        return self.join([p for p, _ in batches]), self.join([t for _, t in batches])

    def _singles(self, batches: Batches) -> Batches:
        preds, labels = self._joined(batches)
        return [(preds[i:i + 1], labels[i:i + 1]) for i in range(len(preds))]

    def _close(self, a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=0.0, abs_tol=self.tolerance)

    # ------------------------------------------------------------------------- the checks

    @pytest.fixture(params=[0, 1, 2], ids=lambda i: f"seed{i}")
    def seed(self, request: pytest.FixtureRequest) -> int:
        if request.param >= len(self.seeds):
            pytest.skip("fewer seeds configured")
        return self.seeds[request.param]

    def test_direction_is_declared(self) -> None:
        assert isinstance(type(self.make_metric()).higher_is_better, bool)

    def test_equals_reference(self, seed: int) -> None:
        batches = self.make_batches(seed)
        got = self._score(self.make_metric(), batches)
        expected = float(self.reference(*self._joined(batches)))
        assert self._close(got, expected), f"metric {got} != reference {expected}"

    def test_batched_updates_equal_one_update(self, seed: int) -> None:
        batches = self.make_batches(seed)
        assert len(batches) > 1, "make_batches should yield several batches"
        batched = self._score(self.make_metric(), batches)
        whole = self._score(self.make_metric(), [self._joined(batches)])
        singles = self._score(self.make_metric(), self._singles(batches))
        assert self._close(batched, whole) and self._close(batched, singles), \
            f"batched {batched}, one update {whole}, one sample per update {singles}"

    def test_reset_forgets_and_compute_repeats(self, seed: int) -> None:
        metric = self.make_metric()
        other = self.make_batches(seed + 1000)
        self._score(metric, other)
        metric.reset()
        batches = self.make_batches(seed)
        first = self._score(metric, batches)
        assert self._close(first, self._score(self.make_metric(), batches))
        assert self._close(first, float(metric.compute())), "compute() changed the state"
