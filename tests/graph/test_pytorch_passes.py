"""Each PyTorch FP32 pass on a small real model: what it changes, and that outputs stay equal."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn
from torch.nn import functional as F

from tunekit.adaptors.pytorch.graph_optimization.constant_fold import ConstantFold
from tunekit.adaptors.pytorch.graph_optimization.cse import EliminateCommonSubexpressions
from tunekit.adaptors.pytorch.graph_optimization.dead_code import EliminateDeadCode
from tunekit.adaptors.pytorch.graph_optimization.fold_batchnorm import FoldBatchNorm
from tunekit.adaptors.pytorch.graph_optimization.fuse_attention import FuseAttention, attention
from tunekit.adaptors.pytorch.graph_optimization.fuse_linear import FuseLinear
from tunekit.adaptors.pytorch.graph_optimization.mkldnn_layout import MKLDNNLayout
from tunekit.adaptors.pytorch.graph_optimization.remove_identity import RemoveIdentity
from tunekit.adaptors.pytorch.graph_optimization.trace import count_nodes, to_graph
from tunekit.errors import ConfigError
from tunekit.graph.pipeline import run_passes, select
from tunekit.graph.registry import available

PASSES = available("pytorch")


class ConvNet(nn.Module):
    """Conv+BN+ReLU, a residual add, dropout, a dead branch and a repeated expression."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, 4)
        self.aux = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)) + y)
        pooled = self.drop(y.mean(dim=(2, 3)))
        self.aux(pooled)  # computed, never used
        return self.fc(pooled) + torch.sigmoid(pooled).sum() - torch.sigmoid(pooled).sum()


class Attention(nn.Module):
    """q/k/v projections of one input, and a constant position table through an embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Embedding(6, 16)
        self.q, self.k, self.v = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16)
        self.register_buffer("pos_ids", torch.arange(6), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos(self.pos_ids)
        att = torch.softmax(self.q(x) @ self.k(x).transpose(-2, -1) / 4.0, dim=-1)
        return att @ self.v(x)


def _trained_bn(model: nn.Module) -> nn.Module:
    """Give BatchNorm non-trivial running statistics, so folding has something to fold."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 8, 8) * 2 + 1)
    return model.eval()


def _close(model: nn.Module, graph: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected, got = model(x), graph(x)
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-4 * scale


@pytest.fixture(scope="module")
def conv_net() -> nn.Module:
    return _trained_bn(ConvNet())


def _types(graph: nn.Module) -> list[str]:
    return [type(m).__name__ for _, m in graph.named_modules()]


def test_fold_batchnorm_removes_every_bn_and_keeps_outputs(conv_net: nn.Module) -> None:
    graph = to_graph(conv_net)
    before = count_nodes(graph)
    folded = FoldBatchNorm().run(graph)
    assert "BatchNorm2d" not in _types(folded) and count_nodes(folded) <= before - 2
    _close(conv_net, folded, torch.randn(2, 3, 8, 8))


def test_remove_identity_cse_and_dead_code(conv_net: nn.Module) -> None:
    graph = to_graph(conv_net)
    graph = RemoveIdentity().run(graph)
    assert "Dropout" not in _types(graph)
    before = count_nodes(graph)
    graph = EliminateCommonSubexpressions().run(graph)
    assert count_nodes(graph) == before - 2  # the second sigmoid and its sum
    graph = EliminateDeadCode().run(graph)
    assert "aux" not in dict(graph.named_modules())
    _close(conv_net, graph, torch.randn(2, 3, 8, 8))


def test_user_model_is_not_modified(conv_net: nn.Module) -> None:
    FoldBatchNorm().run(to_graph(conv_net))
    assert "BatchNorm2d" in _types(conv_net)


def test_fuse_linear_merges_the_projections_of_one_input() -> None:
    model = Attention().eval()
    graph = FuseLinear().run(to_graph(model))
    linears = [m for m in graph.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].out_features == 48
    _close(model, graph, torch.randn(3, 6, 16))


def test_constant_fold_precomputes_the_position_table() -> None:
    model = Attention().eval()
    graph = ConstantFold().run(to_graph(model))
    assert "pos" not in dict(graph.named_modules())
    assert any(name.startswith("_folded_") for name, _ in graph.named_buffers())
    _close(model, graph, torch.randn(3, 6, 16))


def test_mkldnn_layout_converts_conv_models_only(conv_net: nn.Module) -> None:
    graph = MKLDNNLayout().run(FoldBatchNorm().run(to_graph(conv_net)))
    if torch.backends.mkldnn.is_available():
        assert any("Mkldnn" in t for t in _types(graph))
    _close(conv_net, graph, torch.randn(2, 3, 8, 8))
    attention = to_graph(Attention().eval())
    assert MKLDNNLayout().run(attention) is attention


def test_full_pipeline_reports_each_pass(conv_net: nn.Module) -> None:
    graph, reports = run_passes(to_graph(conv_net), select(PASSES, {"channels_last": False}),
                                count_nodes)
    assert [r.name for r in reports][:3] == ["remove_identity", "constant_fold", "fold_batchnorm"]
    assert reports[2].nodes_after < reports[2].nodes_before
    _close(conv_net, graph, torch.randn(5, 3, 8, 8))


def test_select_names_the_yaml_field_of_an_unknown_pass() -> None:
    with pytest.raises(ConfigError, match=r"graph_optimization\.passes\.fold_bn.*fold_batchnorm"):
        select(PASSES, {"fold_bn": False})
    assert [p.name for p in select(PASSES, ["cse", "dead_code"])] == ["cse", "dead_code"]


def test_fuse_attention_replaces_the_written_out_attention() -> None:
    model = Attention().eval()
    graph = FuseAttention().run(to_graph(model))
    targets = [n.target for n in graph.graph.nodes]
    assert attention in targets and torch.softmax not in targets
    _close(model, graph, torch.randn(3, 6, 16))


def test_fuse_attention_leaves_a_masked_attention_alone() -> None:
    class Masked(Attention):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scores = self.q(x) @ self.k(x).transpose(-2, -1) / 4.0
            return torch.softmax(scores - 1e4 * torch.ones(6, 6).triu(1), dim=-1) @ self.v(x)

    graph = to_graph(Masked().eval())
    assert FuseAttention().run(graph) is graph
