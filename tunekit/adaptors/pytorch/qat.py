"""Quantization-aware training (``quantization.approach: qat``) through torch.ao's FX QAT.

A trial's model is built in three steps:

1. :func:`prepare`: a copy of the fused FP32 graph with fake-quantize modules where the trial's
   int8 ops take and give int8 tensors (``prepare_qat_fx``); ops the config leaves in bf16/fp32
   get none, so they train in float;
2. the user's training function trains that copy (in train mode) for its own budget; the fake
   quantizers round weights and activations on the int8 grid in the forward pass and let the
   gradient through (straight-through estimator), so the weights learn to absorb the rounding;
3. :func:`convert`: ``convert_fx`` turns the trained copy into the same real int8 model the
   post-training path builds, and bf16 ops are wrapped as there.

Why start from the fused graph of :class:`~.fx_backend.FusedGraphCache`: BatchNorm is already
folded into its conv, so the converted model has exactly the structure of a post-training
candidate (same modules, same state-dict keys). Saving, :meth:`PyTorchAdaptor.load`, inspection
and the benchmark thus need nothing QAT-specific. The price: BN statistics are frozen during the
fine-tune, which is what short QAT fine-tunes usually do anyway.

Fake quantizers use moving-average min/max observers (the standard for QAT: ranges follow the
weights as they change). So the ``algorithm`` tuning item has one value here, ``minmax``
(:func:`space`); ``scheme`` and ``granularity`` map as in :mod:`.qconfig`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.ao.quantization import (
    FakeQuantize,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    QConfig,
    QConfigMapping,
)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx
from torch.fx import GraphModule

from tunekit.adaptors.pytorch import fx_backend
from tunekit.adaptors.pytorch.bf16 import wrap_bf16
from tunekit.adaptors.pytorch.followers import add_followers
from tunekit.adaptors.pytorch.qconfig import is_static
from tunekit.adaptors.pytorch.sink_dequantize import sink_dequantize
from tunekit.space import OpConfig, QuantConfig, TuningSpace

#: A user's training function: trains the fake-quantized model it is given (in place, or returns
#: the trained model).
TrainFunc = Callable[[nn.Module], Any]


def space(static_space: TuningSpace) -> TuningSpace:
    """The QAT space from the static one: static int8 options with the ``minmax`` algorithm
    (the moving-average observers QAT uses), bf16 and fp32. Dynamic int8 (LSTM/GRU) is left
    out: its activations are quantized at run time, there is nothing to train against."""
    def keep(option: OpConfig) -> bool:
        return option.precision != "int8" or (is_static(option) and option.algorithm == "minmax")

    return TuningSpace({op: tuple(o for o in options if keep(o))
                        for op, options in static_space.options.items()})


def to_qat_qconfig(config: OpConfig) -> QConfig | None:
    """The fake-quantize QConfig of one op; ``None`` (train and stay float) for bf16/fp32."""
    if not is_static(config):
        return None
    activation_scheme = (torch.per_tensor_symmetric if config.scheme == "sym"
                         else torch.per_tensor_affine)
    activation = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, dtype=torch.quint8,
                                        quant_min=0, quant_max=255, qscheme=activation_scheme)
    if config.granularity == "per_tensor":
        weight = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, dtype=torch.qint8,
                                        quant_min=-128, quant_max=127,
                                        qscheme=torch.per_tensor_symmetric)
    else:
        weight = FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver,
                                        dtype=torch.qint8, quant_min=-128, quant_max=127,
                                        qscheme=torch.per_channel_symmetric, ch_axis=0)
    return QConfig(activation=activation, weight=weight)


def prepare(fused: GraphModule, config: QuantConfig, *, followers: bool = True) -> GraphModule:
    """A trainable copy of ``fused`` with fake quantizers for ``config``'s int8 ops, in train
    mode. The FX lowering workarounds of :mod:`.fx_backend` apply as they do to observers."""
    mapping = QConfigMapping()
    static: dict[str, QConfig] = {}
    for op, op_config in config.ops.items():
        qconfig = to_qat_qconfig(op_config)
        mapping.set_module_name(op.name, qconfig)
        if qconfig is not None:
            static[op.name] = qconfig
    if followers:
        add_followers(mapping, fused, static)
    prepared = prepare_qat_fx(copy.deepcopy(fused).train(), mapping, example_inputs=())
    fx_backend.split_mixed_users(prepared)
    fx_backend.keep_float_concats(prepared)
    fx_backend.observe_static_inputs(prepared, static)
    return prepared


def convert(trained: GraphModule, config: QuantConfig) -> GraphModule:
    """The real int8 model of a trained fake-quantized graph (bf16 ops wrapped), eval mode."""
    candidate = convert_fx(trained.eval())
    sink_dequantize(candidate)
    wrap_bf16(candidate, [op.name for op in config.ops_in("bf16")])
    return candidate.eval()


def train(fused: GraphModule, config: QuantConfig, train_func: TrainFunc, *,
          followers: bool = True) -> GraphModule:
    """Prepare, let ``train_func`` train, convert. A function that returns a module is taken to
    return the trained model (it may have wrapped it); any other return value is ignored."""
    prepared = prepare(fused, config, followers=followers)
    returned = train_func(prepared)
    trained = returned if isinstance(returned, GraphModule) else prepared
    return convert(trained, config)


__all__ = ["TrainFunc", "convert", "prepare", "space", "to_qat_qconfig", "train"]
