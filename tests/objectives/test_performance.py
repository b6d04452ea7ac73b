"""Performance against adaptors doing real work whose size the test controls.

The work runs on one thread: on a small shared machine, a thread pool whose sibling thread is
descheduled waits a whole scheduler slice per call, which would swamp the size difference.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pytest

from tunekit.adaptor import Adaptor, DataBatch
from tunekit.errors import DataError
from tunekit.objectives.performance import Performance
from tunekit.space import QuantConfig, TuningSpace


class MatmulAdaptor(Adaptor):
    """The model is a square weight matrix; one call multiplies the batch by it (numpy's own
    single-threaded einsum loop, not a threaded BLAS)."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def capabilities(self, model: Any, approach: str = "static") -> TuningSpace:
        raise NotImplementedError

    def quantize(self, model: Any, config: QuantConfig, calib_data: Iterable[DataBatch]) -> Any:
        raise NotImplementedError

    def predict(self, model: Any,
                data: Iterable[DataBatch]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def run_batch(self, model: np.ndarray, inputs: Any) -> np.ndarray:
        if isinstance(inputs, dict):
            inputs = inputs["x"]
        self.shapes.append(inputs.shape)
        return np.einsum("ij,jk->ik", inputs, model, optimize=False)


def matmul_data(width: int, batch: int = 32, batches: int = 4, tail: int = 0) -> list[DataBatch]:
    rng = np.random.default_rng(0)
    sizes = [batch] * batches + ([tail] if tail else [])
    return [(rng.normal(size=(n, width)).astype(np.float32), np.zeros(n, dtype=np.int64))
            for n in sizes]


def weights(width: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(width, width)).astype(np.float32)


def test_bigger_matmul_measures_slower():
    objective = Performance(warmup=2, iterations=15)
    adaptor = MatmulAdaptor()
    small = objective.measure(adaptor, weights(16), matmul_data(16))
    big = objective.measure(adaptor, weights(256), matmul_data(256))
    # 32×256² vs 32×16² multiply-adds: 256× the work; demand a clear gap despite a noisy machine
    assert big > 5 * small > 0


def test_calls_warmup_plus_iterations_round_robin():
    adaptor = MatmulAdaptor()
    latency = Performance(warmup=3, iterations=7).measure(adaptor, weights(16), matmul_data(16))
    assert len(adaptor.shapes) == 10
    assert latency > 0


def test_ragged_last_batch_is_not_timed():
    adaptor = MatmulAdaptor()
    data = matmul_data(16, batch=8, batches=2, tail=3)
    Performance(warmup=0, iterations=9).measure(adaptor, weights(16), data)
    assert set(adaptor.shapes) == {(8, 16)}


def test_small_first_batch_is_dropped_for_larger_ones():
    adaptor = MatmulAdaptor()
    data = matmul_data(16, batch=2, batches=1) + matmul_data(16, batch=8, batches=2)
    Performance(warmup=1, iterations=4).measure(adaptor, weights(16), data)
    assert set(adaptor.shapes) == {(8, 16)}


def test_batch_size_slices_batches_and_dict_inputs():
    adaptor = MatmulAdaptor()
    data = [({"x": inputs}, labels) for inputs, labels in matmul_data(16, batch=8, tail=3)]
    Performance(warmup=1, iterations=5, batch_size=5).measure(adaptor, weights(16), data)
    assert set(adaptor.shapes) == {(5, 16)}


def test_reads_at_most_iterations_batches():
    def endless() -> Iterator[DataBatch]:
        while True:
            yield matmul_data(8, batches=1)[0]

    adaptor = MatmulAdaptor()
    Performance(warmup=0, iterations=3).measure(adaptor, weights(8), endless())
    assert len(adaptor.shapes) == 3


def test_bare_input_batches_are_timed():
    adaptor = MatmulAdaptor()
    data = [inputs for inputs, _ in matmul_data(16)]
    Performance(warmup=0, iterations=2).measure(adaptor, weights(16), data)
    assert adaptor.shapes == [(32, 16), (32, 16)]


def test_batch_size_larger_than_the_data_fails_clearly():
    with pytest.raises(DataError, match="at most 32 samples"):
        Performance(batch_size=64).measure(MatmulAdaptor(), weights(8), matmul_data(8))


def test_empty_data_fails_clearly():
    with pytest.raises(DataError, match="no samples"):
        Performance().measure(MatmulAdaptor(), weights(8), [])


def test_declares_direction_and_unit():
    assert (Performance.direction, Performance.costly, Performance.unit) == ("minimize", True, "s")


def test_time_budget_caps_the_timed_calls_of_a_slow_model():
    """A model whose calls take 20 ms is warmed up and timed over the fewest calls under a
    50 ms budget, and over every call with no budget."""
    class SlowAdaptor(MatmulAdaptor):
        def run_batch(self, model: np.ndarray, inputs: Any) -> np.ndarray:
            time.sleep(0.02)
            return super().run_batch(model, inputs)

    capped, adaptor = Performance(warmup=10, iterations=30, budget_s=0.05), SlowAdaptor()
    capped.measure(adaptor, weights(8), matmul_data(8))
    assert len(capped.times()) == Performance.MIN_CALLS
    assert len(adaptor.shapes) == Performance.MIN_WARMUP + Performance.MIN_CALLS
    full, adaptor = Performance(warmup=3, iterations=8, budget_s=None), SlowAdaptor()
    full.measure(adaptor, weights(8), matmul_data(8))
    assert len(full.times()) == 8 and len(adaptor.shapes) == 11


@pytest.mark.parametrize("kwargs", [{"warmup": -1}, {"iterations": 0}, {"batch_size": 0},
                                    {"iterations": 2.5}, {"batch_size": True}, {"budget_s": 0},
                                    {"budget_s": "2"}])
def test_bad_parameters_fail_at_construction(kwargs):
    with pytest.raises(ValueError):
        Performance(**kwargs)


def test_bigger_torch_model_measures_slower_through_the_pytorch_adaptor():
    torch = pytest.importorskip("torch")
    from tunekit import plugins

    adaptor = plugins.create("tunekit.adaptors", "pytorch")

    def timed(width: int) -> float:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU()).eval()
        data = [(torch.randn(32, width), torch.zeros(32, dtype=torch.long)) for _ in range(3)]
        return Performance(warmup=2, iterations=15).measure(adaptor, model, data)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert timed(1024) > 5 * timed(16) > 0
    finally:
        torch.set_num_threads(threads)


class PairAdaptor(MatmulAdaptor):
    """Models are ``(name, weights, repeats)``: one call multiplies ``repeats`` times; the
    order of the calls' model names is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    def run_batch(self, model: Any, inputs: Any) -> np.ndarray:
        name, matrix, repeats = model
        self.order.append(name)
        for _ in range(repeats):
            out = super().run_batch(matrix, inputs)
        return out


def test_beside_fp32_times_both_in_alternating_rounds_with_a_spread():
    objective = Performance(warmup=2, iterations=15)
    adaptor = PairAdaptor()
    w = weights(64)
    latency, fp32 = objective.measure_beside(adaptor, ("tuned", w, 1), ("fp32", w, 8),
                                             matmul_data(64))
    details = objective.details()
    assert fp32 / latency > 2  # 8× the work
    assert details["speedup"] == pytest.approx(fp32 / latency)
    assert 0 <= details["spread"] < 1 and details["batch_size"] == 32
    assert 0 <= details.get("foreign_cpu", 0) <= 1  # other processes' share (Linux)
    timed = adaptor.order[4:]  # after two warm-up calls per model
    per_round = objective.iterations // Performance.ROUNDS
    rounds = len(timed) // (2 * per_round)  # fewer than ROUNDS once the ratios settle
    assert Performance.MIN_ROUNDS <= rounds <= Performance.ROUNDS
    firsts = [timed[i * 2 * per_round] for i in range(rounds)]
    # who goes first alternates
    assert firsts == ["tuned", "fp32", "tuned", "fp32", "tuned"][:rounds]
    assert timed.count("tuned") == timed.count("fp32") == rounds * per_round


def test_beside_fp32_stops_early_only_once_the_rounds_agree(monkeypatch: Any) -> None:
    # settled ratios end the timing after MIN_ROUNDS; ratios that disagree use every round
    from tunekit import timing

    for ratios_spread, expected in ((0.0, Performance.MIN_ROUNDS), (0.5, Performance.ROUNDS)):
        monkeypatch.setattr(timing, "spread", lambda ratios, s=ratios_spread: s)
        objective, adaptor = Performance(warmup=2, iterations=15), PairAdaptor()
        objective.measure_beside(adaptor, ("tuned", weights(16), 1), ("fp32", weights(16), 2),
                                 matmul_data(16))
        per_round = objective.iterations // Performance.ROUNDS
        assert len(adaptor.order[4:]) == expected * 2 * per_round


def test_spread_is_half_the_interquartile_range_relative_to_the_median():
    from tunekit.timing import spread

    assert spread([2.0, 2.0, 2.0]) == 0
    assert spread([1.0, 2.0, 3.0]) == pytest.approx(0.25)  # quartiles 1.5, 2.5 around 2
    assert spread([4.0]) == 0


def test_measure_beside_without_a_budget_times_every_call():
    """``budget_s: null`` (every call) used to overflow computing the calls per round."""
    adaptor = MatmulAdaptor()
    objective = Performance(warmup=2, iterations=10, budget_s=None)
    latency, fp32 = objective.measure_beside(adaptor, weights(16), weights(16), matmul_data(16))
    assert latency > 0 and fp32 > 0
    per_round = 10 // Performance.ROUNDS  # every call: none dropped for a budget
    timed = len(objective.times())
    assert timed % per_round == 0
    assert Performance.MIN_ROUNDS * per_round <= timed <= Performance.ROUNDS * per_round
    assert len(adaptor.shapes) == 2 * (2 + timed)
