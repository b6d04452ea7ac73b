"""int8 by swapping modules in place: the fallback for models torch.fx cannot trace.

Data-dependent control flow (``if x.sum() > 0:``), ``*args`` forwards and many HuggingFace models
defeat symbolic tracing, but their tunable ops are still ordinary modules. Each static int8 op is
replaced by a :class:`~torch.ao.quantization.QuantWrapper` (quantize → int8 module → dequantize)
and converted with eager-mode ``prepare``/``convert``; dynamic ops go through
``quantize_dynamic`` with a per-name qconfig dict; bf16 ops are wrapped as in FX mode. Nothing
needs the graph, so any model whose modules can be deep-copied works.

The price: there is no fusion (which BatchNorm follows which conv is only known from the graph),
so BN/ReLU run in float between int8 ops, and every int8 op pays its own quantize/dequantize.
Candidates are slower than FX ones but their accuracy behaves the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from torch import nn
from torch.ao.quantization import QuantWrapper, convert, prepare, quantize_dynamic

from tunekit.adaptors.pytorch.bf16 import wrap_bf16
from tunekit.adaptors.pytorch.qconfig import qconfigs_by_name
from tunekit.adaptors.pytorch.runtime import calibrate, replace_module
from tunekit.space import QuantConfig


def build(model: nn.Module, config: QuantConfig, calib_batches: Iterable[Any]) -> nn.Module:
    """A candidate from a deep copy of ``model`` (eval mode); the original is untouched.

    The structure depends only on ``config``: with no calibration batches the observers keep
    their defaults, which is how a saved candidate is rebuilt before its state_dict is loaded.
    """
    candidate = copy.deepcopy(model).eval()
    static = qconfigs_by_name(config, "static")
    if static:
        for name, qconfig in static.items():
            wrapper = QuantWrapper(candidate.get_submodule(name))
            wrapper.qconfig = qconfig  # type: ignore[assignment]  # eager mode reads it here
            replace_module(candidate, name, wrapper)
        prepare(candidate, inplace=True)
        calibrate(candidate, calib_batches)
        convert(candidate, inplace=True)
    dynamic = qconfigs_by_name(config, "dynamic")
    if dynamic:
        quantize_dynamic(candidate, qconfig_spec=dynamic, inplace=True)
    wrap_bf16(candidate, [op.name for op in config.ops_in("bf16")])
    return candidate
