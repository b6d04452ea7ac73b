"""bf16 auto mixed precision on PyTorch: region casts, and accuracy-driven fallback by the tuner."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import fx, nn

import tunekit
from tunekit.adaptors.pytorch.capabilities import bf16_supported
from tunekit.adaptors.pytorch.graph_optimization.amp import cast, mixed_precision
from tunekit.adaptors.pytorch.graph_optimization.trace import to_graph


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv1(x))
        y = torch.relu(self.conv2(y)) + y
        return self.fc(torch.softmax(y.mean(dim=(2, 3)), dim=-1))


def _casts(graph: fx.GraphModule) -> list[torch.dtype]:
    return [n.args[1] for n in graph.graph.nodes if n.target is cast]


def test_a_bf16_region_has_one_cast_in_and_one_out() -> None:
    model, x = Chain().eval(), torch.randn(2, 3, 8, 8)
    mixed = mixed_precision(to_graph(model), ["conv1", "conv2"], (x,))
    # conv1 → relu → conv2 → relu → add stays bf16; the reduction (mean) gets fp32 back
    assert _casts(mixed) == [torch.bfloat16, torch.float32]
    with torch.no_grad():
        expected, got = model(x), mixed(x)
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, rtol=0.05, atol=0.02)


def test_an_fp32_op_between_bf16_ops_gets_float32_inputs() -> None:
    model, x = Chain().eval(), torch.randn(2, 3, 8, 8)
    mixed = mixed_precision(to_graph(model), ["conv1", "fc"], (x,))
    assert mixed.get_submodule("conv2").weight.dtype == torch.float32
    assert mixed.get_submodule("fc").weight.dtype == torch.bfloat16
    with torch.no_grad():
        assert mixed(x).dtype == torch.float32


# size, not latency: bf16 may be no faster than fp32 on a model this small (or on a busy
# machine), and then FP32 is kept and no bf16 op returned (tests/test_result_selection.py);
# these tests are about which ops fall back, not about speed
NOT_TIMED = "size"


def _batches() -> list[tuple[Any, Any]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(4, 3, 8, 8, generator=g), torch.zeros(4, dtype=torch.long))
            for _ in range(2)]


def test_without_evaluation_every_supported_op_is_bf16() -> None:
    if not bf16_supported():
        pytest.skip("no native bf16 on this CPU")
    result = tunekit.optimize_graph(Chain().eval(), ("bf16", "fp32"), example_data=_batches())
    assert sorted(result.bf16_ops) == ["conv1", "conv2", "fc"] and result.tuning is None
    assert "auto_mixed_prec" in result.summary()


def test_tuning_falls_back_only_the_op_that_breaks_the_goal(tmp_path: Any) -> None:
    if not bf16_supported():
        pytest.skip("no native bf16 on this CPU")

    def evaluate(model: nn.Module) -> float:
        # the "accuracy" of this check: fc must stay float32, everything else may be bf16
        return 0.0 if model.get_submodule("fc").weight.dtype == torch.bfloat16 else 1.0

    result = tunekit.optimize_graph(Chain().eval(), ("bf16", "fp32"), example_data=_batches(),
                                    eval_func=evaluate,
                                    accuracy_criterion={"absolute": 0.0}, objective=NOT_TIMED,
                                    workspace=str(tmp_path / "ws"))
    assert result.met and result.tuning is not None and not result.tuning.fp32_kept
    assert sorted(result.bf16_ops) == ["conv1", "conv2"]
    assert result.model.get_submodule("fc").weight.dtype == torch.float32


def _fp32_ops(model: nn.Module) -> set[str]:
    return {name for name in ("conv1", "conv2", "fc")
            if model.get_submodule(name).weight.dtype == torch.float32}


def test_a_sensitive_op_type_falls_back_as_a_type_first(tmp_path: Any) -> None:
    """Both convs must be fp32: the op-type stage finds it in one trial after all-bf16."""
    if not bf16_supported():
        pytest.skip("no native bf16 on this CPU")
    result = tunekit.optimize_graph(
        Chain().eval(), ("bf16", "fp32"), example_data=_batches(),
        eval_func=lambda model: float({"conv1", "conv2"} <= _fp32_ops(model)),
        accuracy_criterion={"absolute": 0.0}, objective=NOT_TIMED,
        workspace=str(tmp_path / "ws"))
    assert result.met and sorted(result.bf16_ops) == ["fc"]
    trials = result.tuning.trials
    # all bf16, then the Conv2d type back to fp32 (meets); polish then tries each conv alone
    # back in bf16 (both at once is the all-bf16 config, answered without a trial): both fail,
    # so the answer is 1-minimal and no op-wise stage ran
    assert [t.stage for t in trials] == ["default", "op_type", "polish", "polish"]
    assert [t.accepted for t in trials] == [False, True, False, False]
    assert sorted(op.name for t in trials[2:] for op in t.config.ops_in("fp32")) == \
        ["conv1", "conv2"]
    assert result.tuning.best_trial is trials[1]


def test_ops_of_two_types_fall_back_op_by_op(tmp_path: Any) -> None:
    """conv2 and fc must be fp32: no single type does it, the ranked op-wise stage does, and
    conv1 stays bf16."""
    if not bf16_supported():
        pytest.skip("no native bf16 on this CPU")
    result = tunekit.optimize_graph(
        Chain().eval(), ("bf16", "fp32"), example_data=_batches(),
        eval_func=lambda model: float(len({"conv2", "fc"} & _fp32_ops(model))),
        accuracy_criterion={"absolute": 0.0}, objective=NOT_TIMED,
        workspace=str(tmp_path / "ws"))
    assert result.met and sorted(result.bf16_ops) == ["conv1"]


def test_a_goal_only_fp32_meets_returns_the_fp32_pipelines_model(tmp_path: Any) -> None:
    """Every op back in fp32: the result is the FP32-optimized (lowered) model, not an AMP graph
    with no bf16 in it."""
    if not bf16_supported():
        pytest.skip("no native bf16 on this CPU")
    model, batches = Chain().eval(), _batches()
    result = tunekit.optimize_graph(
        model, ("bf16", "fp32"), example_data=batches,
        eval_func=lambda graph: float(_fp32_ops(graph) == {"conv1", "conv2", "fc"}),
        accuracy_criterion={"absolute": 0.0}, workspace=str(tmp_path / "ws"))
    assert result.met and not result.bf16_ops
    assert "auto_mixed_precision" not in [r.name for r in result.reports]
    assert [r.name for r in result.reports][-1] == tunekit.optimize_graph(
        model, ("fp32",), example_data=batches).reports[-1].name  # the same lowering passes
    x = batches[0][0]
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), model(x), rtol=1e-4, atol=1e-5)


def test_channels_last_can_be_switched_off_for_bf16() -> None:
    """The AMP build runs the bf16 passes the config leaves on, not a fixed list."""
    if not bf16_supported():
        pytest.skip("no native bf16 on this CPU")

    def conv_layout(passes: Any) -> bool:
        result = tunekit.optimize_graph(Chain().eval(), ("bf16",), example_data=_batches(),
                                        passes=passes)
        weight = result.model.get_submodule("conv1").weight
        return weight.is_contiguous(memory_format=torch.channels_last)

    assert conv_layout(None)
    assert not conv_layout({"channels_last": False})


def test_the_amp_adaptor_wraps_the_framework_adaptor_rather_than_subclassing_it() -> None:
    """Running, timing and sizing are the wrapped adaptor's answers; none of its int8
    machinery (calibration, backends, deployment) applies to a bf16 candidate."""
    from tunekit.adaptors.pytorch import PyTorchAdaptor
    from tunekit.adaptors.pytorch.graph_optimization.amp_adaptor import AMPAdaptor

    framework = PyTorchAdaptor(backend="fx")
    model, x = Chain().eval(), torch.randn(2, 3, 8, 8)
    amp = AMPAdaptor(framework, example_inputs=(x,))
    assert not isinstance(amp, PyTorchAdaptor)
    graph = to_graph(model)
    assert amp.model_size(graph) == framework.model_size(graph)
    with amp.threads(1) as used:
        assert used == 1 == torch.get_num_threads()
    [(outputs, _)] = amp.predict(graph, [(x, None)])
    assert outputs.dtype.name == "float32" and outputs.shape == (2, 3)
    candidate = amp.build(graph, [])  # every op in fp32: no bf16 CPU needed
    assert amp.deploy(graph, None, candidate, [], (x,), lambda m: True) == (candidate, {})
