"""Passes are ``tunekit.passes`` entry points: built-ins are found in pipeline order, a
third-party pass joins the pipeline at its ``order`` and is switched by name from the YAML."""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")
from torch import nn

import tunekit
from tunekit.errors import ConfigError, PluginError
from tunekit.graph.registry import available

SCALE_PASS = '''
from torch import fx
from tunekit.graph.pipeline import GraphPass

class DoubleOutput(GraphPass):
    """Multiplies the output by two: a visible, checkable change."""
    name = "double_output"
    framework = "pytorch"
    order = 65

    def run(self, graph: fx.GraphModule) -> fx.GraphModule:
        output = next(n for n in graph.graph.nodes if n.op == "output")
        with graph.graph.inserting_before(output):
            doubled = graph.graph.call_function(__import__("operator").mul,
                                                (output.args[0], 2.0))
        output.args = (doubled,)
        graph.recompile()
        return graph
'''


def test_builtin_passes_come_in_pipeline_order() -> None:
    assert [p.name for p in available("pytorch")] == [
        "remove_identity", "constant_fold", "fold_batchnorm", "cse", "fuse_linear", "fuse_attention",
        "dead_code",
        "channels_last", "inductor", "mkldnn_layout", "torchscript"]
    assert [p.name for p in available("tensorflow")] == [
        "strip", "constant_fold", "fold_batchnorm", "arithmetic", "auto_mixed_precision",
        "remapper"]


def test_a_third_party_pass_runs_at_its_order_and_switches_off(
        install_dist: Callable[..., object]) -> None:
    install_dist("tunekit-double", "[tunekit.passes]\npytorch.double_output = "
                                   "double_mod:DoubleOutput\n", {"double_mod": SCALE_PASS})
    model, x = nn.Sequential(nn.Linear(4, 3)).eval(), torch.randn(2, 4)
    result = tunekit.optimize_graph(model, ("fp32",))
    names = [r.name for r in result.reports]
    assert names.index("double_output") == names.index("dead_code") + 1
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), 2 * model(x))
        off = tunekit.optimize_graph(model, ("fp32",), passes={"double_output": False})
        torch.testing.assert_close(off.model(x), model(x))


def test_an_entry_point_named_unlike_its_pass_is_refused(
        install_dist: Callable[..., object]) -> None:
    install_dist("tunekit-misnamed", "[tunekit.passes]\npytorch.doubler = "
                                     "double_mod:DoubleOutput\n", {"double_mod": SCALE_PASS})
    with pytest.raises(PluginError, match=r"'pytorch\.double_output'"):
        available("pytorch")


def test_an_unknown_pass_name_names_the_yaml_field() -> None:
    with pytest.raises(ConfigError, match=r"graph_optimization\.passes\.fold_bn"):
        tunekit.optimize_graph(nn.Linear(2, 2), ("fp32",), passes=["fold_bn"])
