"""Lowering passes ``inductor`` and ``torchscript``: the fastest form is kept, outputs stay
equal, and the result saves and loads."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn

import tunekit
from tunekit.adaptors.pytorch.graph_optimization import torchscript
from tunekit.adaptors.pytorch.graph_optimization.inductor import Inductor
from tunekit.adaptors.pytorch.graph_optimization.torchscript import TorchScript
from tunekit.adaptors.pytorch.graph_optimization.trace import count_nodes, to_graph
from tunekit.graph import GraphResult


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 12 * 12, 5)).eval()


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).abs().max() / expected.abs().max()).item()


def test_without_an_example_batch_the_fx_graph_is_kept() -> None:
    graph = to_graph(_model())
    assert TorchScript().run(graph) is graph


def test_the_kept_lowering_is_timed_and_gives_equal_outputs() -> None:
    model, x = _model(), torch.randn(2, 3, 12, 12)
    lowering = TorchScript().bind((x,))
    kept = lowering.run(to_graph(model))
    assert lowering.note.startswith("kept ") and "ms on the example batch" in lowering.note
    assert isinstance(kept, torch.jit.ScriptModule) == lowering.note.startswith("kept TorchScript")
    with torch.no_grad():
        held_out = torch.randn(4, 3, 12, 12)
        assert _relative(kept(held_out), model(held_out)) <= 1e-4


def test_a_lowered_module_saves_and_loads(tmp_path: Path) -> None:
    """Forces TorchScript (prepacked oneDNN weights are opaque to torch.jit.save)."""
    model, x = _model(), torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        traced = torch.jit.trace(tunekit.optimize_graph(model, ("fp32",)).model, (x,))
        lowered = torchscript.lower(traced)
        torchscript._TRACES[lowered] = traced
        result = GraphResult(lowered, "pytorch", ("fp32",))
        result.save(tmp_path / "model.pt")
        loaded = torchscript.load(tmp_path / "model.pt")
        assert _relative(loaded(x), model(x)) <= 1e-4


def test_optimize_graph_with_example_data_reports_the_choice() -> None:
    model, x = _model(), torch.randn(2, 3, 12, 12)
    result = tunekit.optimize_graph(model, ("fp32",), example_data=[(x, None)])
    lines = {line.split()[0]: line for line in result.summary().splitlines()[1:]}
    assert "Inductor" in lines["inductor"] and "TorchScript" in lines["torchscript"]
    with torch.no_grad():
        assert _relative(result.model(x), model(x)) <= 1e-4


def test_inductor_compares_three_lowerings_and_keeps_outputs(tmp_path: Path) -> None:
    model, x = _model(), torch.randn(2, 3, 12, 12)
    lowering = Inductor().bind((x,))
    kept = lowering.run(to_graph(model))
    assert all(name in lowering.note for name in ("Inductor", "TorchScript", "FX"))
    assert (kept is not None) and count_nodes(kept) > 0
    with torch.no_grad():
        held_out = torch.randn(4, 3, 12, 12)
        assert _relative(kept(held_out), model(held_out)) <= 1e-4
    GraphResult(kept, "pytorch", ("fp32",)).save(tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    to_graph(model).load_state_dict(state)  # the FX graph the pass was given
