"""FakeAdaptor: its formulas, and that the Adaptor API turns them into real evidence."""

from __future__ import annotations

import numpy as np
import pytest

from tunekit.errors import ConfigError, ModelError, NotSupportedError, TrialError
from tunekit.metrics.topk import TopK
from tunekit.space import OpConfig, OpKey, TuningSpace
from tunekit.testing import (DIGITS_OPS, LATENCIES, FakeAdaptor, FakeModel, ModelledLatency,
                             fake_data)

CONV1, CONV2, CONV3, FC1, FC2 = DIGITS_OPS


@pytest.fixture
def adaptor() -> FakeAdaptor:
    return FakeAdaptor(ops=DIGITS_OPS, base_accuracy=0.998, drops={"conv1": 0.199, "fc2": 0.01},
                       bf16_drops={"conv1": 0.003},
                       item_drops={("conv1", "algorithm", "histogram"): 0.05,
                                   ("conv1", "scheme", "sym"): 0.3})


def top1(adaptor: FakeAdaptor, model: FakeModel, data: list) -> float:
    metric = TopK(k=1)
    for outputs, labels in adaptor.predict(model, data):
        metric.update(outputs, labels)
    return metric.compute()


def test_modelled_accuracy_sums_the_op_drops(adaptor: FakeAdaptor) -> None:
    space = adaptor.capabilities(None)
    default = space.default()
    assert adaptor.accuracy(None) == 0.998
    assert adaptor.accuracy(default) == pytest.approx(0.998 - 0.199 - 0.01)
    assert adaptor.accuracy(default.with_op(CONV1, OpConfig("bf16"))) == pytest.approx(0.985)
    assert adaptor.accuracy(space.uniform("fp32")) == 0.998


def test_an_item_override_replaces_the_drop_and_the_smallest_wins(adaptor: FakeAdaptor) -> None:
    histogram = OpConfig("int8", "static", "asym", "per_channel", "histogram")
    sym_histogram = OpConfig("int8", "static", "sym", "per_channel", "histogram")
    sym_minmax = OpConfig("int8", "static", "sym", "per_channel", "minmax")
    assert adaptor.op_drop(CONV1, histogram) == 0.05
    assert adaptor.op_drop(CONV1, sym_histogram) == 0.05  # min(0.05, 0.3)
    assert adaptor.op_drop(CONV1, sym_minmax) == 0.3  # an override may also hurt
    assert adaptor.op_drop(CONV2, sym_minmax) == 0.0
    assert adaptor.op_drop(CONV1, OpConfig("fp32")) == 0.0


@pytest.mark.parametrize("samples, batch", [(1000, 100), (597, 32), (10, 3)])
def test_top1_of_predict_equals_the_rounded_modelled_accuracy(adaptor: FakeAdaptor,
                                                              samples: int, batch: int) -> None:
    space = adaptor.capabilities(None)
    for config in (space.default(), space.uniform("bf16"), space.uniform("fp32")):
        model = adaptor.quantize(FakeModel(), config, [])
        expected = round(adaptor.accuracy(config) * samples) / samples
        assert top1(adaptor, model, fake_data(samples, batch)) == pytest.approx(expected)


def test_predict_does_not_depend_on_batching(adaptor: FakeAdaptor) -> None:
    model = FakeModel(adaptor.capabilities(None).default())
    whole = np.concatenate([o for o, _ in adaptor.predict(model, fake_data(300, 300))])
    pieces = np.concatenate([o for o, _ in adaptor.predict(model, fake_data(300, 7))])
    assert np.array_equal(whole, pieces)


def test_evaluate_goes_through_quantize_and_predict(adaptor: FakeAdaptor) -> None:
    default = adaptor.capabilities(None).default()
    assert adaptor.evaluate(default) == pytest.approx(0.789)
    assert (adaptor.quantize_calls, adaptor.predict_calls) == (1, 1)


def test_predict_rejects_labels_it_cannot_score(adaptor: FakeAdaptor) -> None:
    with pytest.raises(ValueError, match="class ids in"):
        list(adaptor.predict(FakeModel(), [(np.zeros((2, 1)), np.array([3, 12]))]))


def test_latency_orders_precisions_and_weighs_ops() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, op_costs={"conv3": 10.0})
    space = adaptor.capabilities(None)
    int8, bf16, fp32 = (adaptor.latency(FakeModel(space.uniform(p))) for p in LATENCIES)
    assert int8 < bf16 < fp32 == adaptor.latency(FakeModel())
    assert int8 == 14 * LATENCIES["int8"]  # four ops of cost 1, conv3 of cost 10
    assert ModelledLatency().measure(adaptor, FakeModel(), []) == fp32
    assert adaptor.model_size(FakeModel(space.uniform("int8"))) == 14_000
    assert adaptor.model_size(FakeModel()) == 56_000


def test_modelled_latency_needs_the_fake_adaptor() -> None:
    with pytest.raises(NotSupportedError, match="needs a FakeAdaptor"):
        ModelledLatency().measure(object(), FakeModel(), [])  # type: ignore[arg-type]


def test_inspect_mse_equals_the_op_drop(adaptor: FakeAdaptor) -> None:
    candidate = adaptor.quantize(FakeModel(), adaptor.capabilities(None).default(), [])
    outputs = adaptor.inspect(FakeModel(), candidate, [CONV1, CONV2, FC2], fake_data(10, 10))
    mse = {op: float(np.mean((ref - out) ** 2)) for op, (ref, out) in outputs.items()}
    assert mse == pytest.approx({CONV1: 0.199, CONV2: 0.0, FC2: 0.01})


def test_quantize_counts_calls_fails_on_request_and_checks_ops() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS, fails=lambda c: c.precision_of(FC2) == "fp32")
    space = adaptor.capabilities(None)
    adaptor.quantize(FakeModel(), space.default(), [])
    with pytest.raises(TrialError, match="fake quantization of .* failed"):
        adaptor.quantize(FakeModel(), space.uniform("fp32"), [])
    other = TuningSpace({OpKey("x", "Linear"): (OpConfig("fp32"),)})
    with pytest.raises(ModelError, match="are not the adaptor's ops"):
        adaptor.quantize(FakeModel(), other.default(), [])
    assert adaptor.quantize_calls == 3


def test_capabilities_per_approach_or_a_given_space() -> None:
    adaptor = FakeAdaptor(ops=DIGITS_OPS)
    static, auto = adaptor.capabilities(None), adaptor.capabilities(None, "auto")
    assert static.default().ops[CONV1] == OpConfig("int8", "static", "asym", "per_channel",
                                                   "minmax")
    assert {o.approach for o in static.options[CONV1]} == {"static", None}
    assert {o.approach for o in auto.options[CONV1]} == {"static", "dynamic", None}
    assert static.fallbacks(CONV1) == [OpConfig("bf16"), OpConfig("fp32")]
    assert len(adaptor.capabilities(None, "dynamic").options[FC1]) == 2 + 2
    with pytest.raises(ConfigError, match="approach: must be one of"):
        adaptor.capabilities(None, "qat")
    given = static.restrict([])
    assert FakeAdaptor(ops=given).capabilities(None, "auto") is given


def test_drops_for_unknown_ops_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown ops \['conv9'\]"):
        FakeAdaptor(ops=DIGITS_OPS, item_drops={("conv9", "scheme", "sym"): 0.1})


def test_save_and_load_round_trip_the_config(adaptor: FakeAdaptor, tmp_path) -> None:
    config = adaptor.capabilities(None).default().with_op(CONV1, OpConfig("bf16"))
    path = tmp_path / f"best{adaptor.model_suffix}"
    adaptor.save(FakeModel(config), config, path)
    assert adaptor.load(FakeModel(), config, path) == FakeModel(config)


def test_run_batch_is_cheap_and_shaped_like_the_outputs(adaptor: FakeAdaptor) -> None:
    inputs, _ = fake_data(64, 64)[0]
    assert adaptor.run_batch(FakeModel(), inputs).shape == (64, FakeAdaptor.num_classes)
