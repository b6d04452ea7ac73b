"""PyTorch graph optimization end to end: trace, FP32 passes, then layout or bf16/fp32 mix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from tunekit.adaptor import Adaptor
from tunekit.adaptors.pytorch.graph_optimization.amp import bf16_candidates
from tunekit.adaptors.pytorch.graph_optimization.amp_adaptor import AMPAdaptor
from tunekit.adaptors.pytorch.graph_optimization.trace import count_nodes, to_graph
from tunekit.data import split_batch
from tunekit.graph.graph_result import GraphResult
from tunekit.graph.pipeline import PassReport, needs_data, run_passes, select
from tunekit.graph.registry import available
from tunekit.result import TuneResult

#: runs the tuner on (the FP32-optimized graph, the AMP adaptor): see tunekit.graph.optimize
Tune = Callable[[fx.GraphModule, AMPAdaptor], TuneResult]
#: passes ordered below keep every Conv/Linear an ``nn`` module (AMP tunes and converts those);
#: passes from it on lower the FP32 graph
LOWERING_ORDER = 100


def optimize(framework: Adaptor, model: nn.Module, precisions: Sequence[str], passes: Any,
             example_inputs: Sequence[Any] | None, tune: Tune | None = None) -> GraphResult:
    """Run the selected passes; with bf16 allowed, convert (all, or as ``tune`` decides; when
    the tuning keeps every op in fp32, the result is the FP32 pipeline's). ``framework`` is the
    PyTorch adaptor the AMP adaptor wraps to run and time candidates.

    FP32 only: with ``example_inputs`` the result may be a frozen TorchScript module (where that
    measures faster, see :mod:`.torchscript`), else an FX ``GraphModule``.
    """
    chosen = select(available("pytorch"), passes)
    structural = [p for p in chosen if p.order < LOWERING_ORDER]
    graph, reports = run_passes(to_graph(model), structural, count_nodes)
    precisions = tuple(precisions)
    lowering = [p.bind(example_inputs) for p in chosen
                if p.order >= LOWERING_ORDER and "fp32" in p.precisions]
    if "bf16" not in precisions:
        graph, more = run_passes(graph, lowering, count_nodes)
        return GraphResult(graph, "pytorch", precisions, [*reports, *more])
    if example_inputs is None:
        raise ValueError("bf16 needs example_inputs (one batch) to place the casts")
    adaptor = AMPAdaptor(framework, example_inputs=example_inputs,
                         after=[p.bind(example_inputs) for p in chosen
                                if p.order >= LOWERING_ORDER and "bf16" in p.precisions])
    tuning = None
    if tune is not None and "fp32" in precisions:
        tuning = tune(graph, adaptor)
        bf16_ops = [op.name for op in tuning.best_config.ops_in("bf16")] \
            if tuning.best_config is not None else []
        if not bf16_ops:  # fp32 throughout: the FP32 pipeline's result, lowered where faster
            graph, more = run_passes(graph, lowering, count_nodes)
            return GraphResult(graph, "pytorch", precisions, [*reports, *more], (), tuning)
    else:
        adaptor.capabilities(graph)  # refuses a CPU without native bf16
        bf16_ops = bf16_candidates(graph)
    before = count_nodes(graph)
    mixed = tuning.best_model if tuning is not None else adaptor.build(graph, bf16_ops)
    reports.append(PassReport("auto_mixed_precision", before, count_nodes(mixed), 0.0))
    return GraphResult(mixed, "pytorch", precisions, reports, bf16_ops, tuning)


def optimize_batch(framework: Adaptor, model: nn.Module, precisions: Sequence[str],
                   passes: Any, batch: Any, tune: Tune | None = None) -> GraphResult:
    """:func:`optimize` given one ``(inputs, labels)`` batch (or None), as the adaptor's
    ``optimize_graph`` receives it; bf16 needs the batch to place its casts."""
    if batch is None and "bf16" in precisions:
        raise needs_data("bf16 needs one example batch to place the casts")
    inputs = example_inputs(split_batch(batch)[0], model) if batch is not None else None
    return optimize(framework, model, precisions, passes, inputs, tune)


def example_inputs(batch_inputs: Any, model: nn.Module) -> tuple[Any, ...]:
    """One batch's inputs as the positional arguments of ``model.forward``."""
    if isinstance(batch_inputs, dict):
        graph = to_graph(model)
        names = [n.target for n in graph.graph.nodes if n.op == "placeholder"]
        return tuple(batch_inputs.get(name) for name in names)
    if isinstance(batch_inputs, (tuple, list)):
        return tuple(batch_inputs)
    return (batch_inputs,)


def save_model(model: nn.Module, path: Path) -> None:
    """A graph-optimized model in a safe form (no pickle): a TorchScript archive for a result
    lowered to TorchScript (read it with :func:`.torchscript.load`), else the tensors of its
    ``state_dict`` (dense: oneDNN-layout weights are not portable)."""
    if isinstance(model, torch.jit.ScriptModule):
        from tunekit.adaptors.pytorch.graph_optimization import torchscript

        torchscript.save(model, path)
        return
    source = getattr(model, "_orig_mod", model)  # torch.compile'd: its FX graph
    state = {key: value.to_dense() if value.is_mkldnn else value
             for key, value in source.state_dict().items()}
    torch.save(state, Path(path))
