"""Size and memory objectives on real torch models, and the performance objective's details."""

from __future__ import annotations

import numpy as np
import pytest
from test_performance import MatmulAdaptor, matmul_data, weights

from tunekit.errors import NotSupportedError
from tunekit.objectives.memory import Memory
from tunekit.objectives.performance import Performance
from tunekit.objectives.size import Size

torch = pytest.importorskip("torch")
from torch_models import LinearStack, batches

from tunekit.adaptors.pytorch import PyTorchAdaptor


@pytest.fixture(scope="module")
def adaptor() -> PyTorchAdaptor:
    return PyTorchAdaptor()


def int8(adaptor: PyTorchAdaptor, model: torch.nn.Module, width: int) -> torch.nn.Module:
    return adaptor.quantize(model, adaptor.capabilities(model).default(), batches(width))


def test_int8_size_is_a_quarter_of_fp32(adaptor):
    model = LinearStack(4, 256)
    fp32 = Size().measure(adaptor, model, [])
    ratio = Size().measure(adaptor, int8(adaptor, model, 256), []) / fp32
    assert fp32 > 4 * 4 * 256 * 256   # bytes, not element counts
    assert 0.24 < ratio < 0.30        # int8 weights + fp32 biases, scales and file overhead


def test_memory_counts_native_weights_and_scales_with_the_model(adaptor):
    data = batches(1024)
    one = Memory().measure(adaptor, LinearStack(8, 1024), data)
    two = Memory().measure(adaptor, LinearStack(16, 1024), data)
    weights_one = 8 * 1024 * 1025 * 4
    assert one > weights_one          # tracemalloc would report almost nothing here
    assert 1.6 < two / one < 2.2
    quantized = Memory().measure(adaptor, int8(adaptor, LinearStack(8, 1024), 1024), data)
    assert quantized < 0.8 * one      # the FX int8 graph is pickled into the fresh process too


def test_performance_records_throughput_and_pinned_threads(adaptor):
    before = torch.get_num_threads()
    objective = Performance(warmup=1, iterations=3, threads=1)
    latency = objective.measure(adaptor, LinearStack(1, 64), batches(64))
    assert objective.details() == {"threads": 1.0, "batch_size": 8.0,
                                   "throughput": pytest.approx(8 / latency)}
    assert torch.get_num_threads() == before


def test_objectives_need_their_adaptor_probes():
    objective = Performance(warmup=0, iterations=2)
    objective.measure(MatmulAdaptor(), weights(8), matmul_data(8))
    assert set(objective.details()) == {"throughput", "batch_size"}   # thread count unknown
    with pytest.raises(NotSupportedError, match="thread count"):
        Performance(threads=2).measure(MatmulAdaptor(), weights(8), matmul_data(8))
    with pytest.raises(NotSupportedError, match="memory"):
        Memory().measure(MatmulAdaptor(), weights(8), matmul_data(8))
    with pytest.raises(NotSupportedError, match="model size"):
        Size().measure(MatmulAdaptor(), weights(8), [])


def test_directions_and_parameter_checks():
    assert (Size.direction, Size.costly, Memory.direction, Memory.costly) == \
        ("minimize", False, "minimize", True)
    for bad in ({"batches": 0}, {"batch_size": 0}, {"batches": 1.5}):
        with pytest.raises(ValueError):
            Memory(**bad)
    with pytest.raises(ValueError):
        Performance(threads=0)
    assert np.isfinite(Performance(warmup=0, iterations=1).measure(
        MatmulAdaptor(), weights(4), matmul_data(4)))
