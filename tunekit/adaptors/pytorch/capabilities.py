"""Which ops of a real model are tunable, and which options each one gets.

Ops are found by walking ``named_modules()``, not by tracing, so a model torch.fx cannot trace
still gets a tuning space. A tunable op is a module whose class is exactly one of the quantizable
types below; subclasses are left out on purpose (``MultiheadAttention.out_proj`` is a ``Linear``
subclass that its parent never calls as a module).

Approaches (the ``approach`` argument):

- ``static``: Conv/Linear get static int8 options. LSTM/GRU have no static int8 kernel on x86, so
  they get their only int8 form, dynamic, rather than no int8 at all.
- ``dynamic``: Linear/LSTM/GRU get dynamic int8. Convs get bf16/fp32 only: x86 has no dynamic int8
  conv, and giving them static options would make a "dynamic" tuning need calibration data.
- ``auto``: static first, then dynamic, for Linear (the strategy can pick the better one per op);
  Conv static, LSTM/GRU dynamic.

Convs padded other than with zeros get no int8 option (the int8 kernels only pad with zeros).
Every op then gets ``bf16`` where the CPU runs bf16 natively (oneDNN reports bf16 support), and
``fp32``: bf16 first, except for ops whose dot products are too short for bf16 to win
(:data:`BF16_MIN_REDUCTION`), where fp32 comes first, so a fallback picks the faster float. The head of each op's options is the most aggressive one, for a Linear/Conv under
``static``: static/asym/per_channel/histogram, torch.ao's own default observers without its
``reduce_range`` (Intel Neural Compressor's default is min/max, which lost accuracy against
torch's default on glue-heavy nets; see :data:`ALGORITHMS`).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from tunekit.errors import ConfigError, NotSupportedError
from tunekit.space import INT8_ITEMS, OpConfig, OpKey, TuningSpace, int8_options

APPROACHES = ("static", "dynamic", "auto")
#: Activation calibration, default first: torch.ao's own default observer (histogram). With
#: min/max first, the default int8 of a MobileNetV3-like net trained on digits scored 0.8861
#: top-1 where torch.ao's default int8 scored 0.8911 (histogram: 0.8911; docs/pytorch-backend.md).
ALGORITHMS = ("histogram", "minmax", "percentile")
STATIC_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
DYNAMIC_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.LSTM, nn.GRU)
TUNABLE_TYPES: tuple[type[nn.Module], ...] = STATIC_TYPES + (nn.LSTM, nn.GRU)


@functools.lru_cache(maxsize=1)
def bf16_supported() -> bool:
    """Whether this CPU runs bf16 convs/GEMMs natively (avx512_bf16/AMX via oneDNN).

    Without native support torch emulates bf16, which is slower than fp32, so offering bf16 there
    would only add trials that can't win.
    """
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def find_ops(model: nn.Module) -> dict[OpKey, nn.Module]:
    """Tunable modules by OpKey, in ``named_modules()`` order (shared modules listed once)."""
    if isinstance(model, torch.jit.ScriptModule):
        raise NotSupportedError(
            "TorchScript models can be run and timed but not quantized: their submodules are "
            "compiled code, not nn.Conv2d/nn.Linear modules. Give the eager model instead "
            "('model.factory' in the YAML)")
    return {OpKey(name, type(module).__name__): module
            for name, module in model.named_modules()
            if name and type(module) in TUNABLE_TYPES}


def op_options(module: nn.Module, approach: str, bf16: bool) -> tuple[OpConfig, ...]:
    """The options of one op, most aggressive first, fp32 last."""
    schemes, granularities = INT8_ITEMS["scheme"], INT8_ITEMS["granularity"]
    algorithms = ALGORITHMS
    approaches = _approaches(type(module), approach)
    if getattr(module, "padding_mode", "zeros") != "zeros":
        approaches = []  # int8 convs pad with zeros only ("circular is not supported")
    options = int8_options(approaches, schemes, granularities, algorithms) if approaches else []
    floats = [OpConfig("bf16"), OpConfig("fp32")] if bf16 else [OpConfig("fp32")]
    if bf16 and reduction_size(module) < BF16_MIN_REDUCTION:
        floats.reverse()  # too short a dot product for bf16 to pay for its casts: fp32 first
    return tuple(options + floats)


#: Reduction length (input channels per group × kernel area, or input features) below which a
#: bf16 op ran slower than fp32 here (K=9: 0.64×, 27: 0.95×, 72: 0.88×; K=144: 1.16×,
#: 288: 1.30×; conv layers on this CPU, torch 2.13, with the per-op casts of :mod:`.bf16`).
BF16_MIN_REDUCTION = 128


def reduction_size(module: nn.Module) -> int:
    """How many products each output element sums: the length bf16 dot products work on."""
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.modules.conv._ConvNd) and weight is not None:
        return int(weight[0].numel())  # in_channels / groups × kernel area
    return BF16_MIN_REDUCTION  # recurrent ops: gates over the hidden size; keep bf16 first


def _approaches(module_type: type[nn.Module], approach: str) -> list[str]:
    static = module_type in STATIC_TYPES
    dynamic = module_type in DYNAMIC_TYPES
    if approach == "static":
        return ["static"] if static else ["dynamic"] if dynamic else []
    if approach == "dynamic":
        return ["dynamic"] if dynamic else []
    return [a for a, ok in (("static", static), ("dynamic", dynamic)) if ok]


def capabilities(model: nn.Module, approach: str = "static") -> TuningSpace:
    """The tuning space of ``model`` (see the module docstring for the rules)."""
    if approach not in APPROACHES:
        raise ConfigError("quantization.approach",
                          f"unknown approach {approach!r}; expected one of "
                          + ", ".join(APPROACHES))
    ops = find_ops(model)
    if not ops:
        raise NotSupportedError(
            f"{type(model).__name__} has no quantizable modules (nn.Conv1d/2d/3d, nn.Linear, "
            "nn.LSTM, nn.GRU). A torch.export program flattens modules into aten ops, so give "
            "the eager model ('model.factory' in the YAML) rather than a .pt2 file to tune it")
    bf16 = bf16_supported()
    return TuningSpace({op: op_options(module, approach, bf16) for op, module in ops.items()})
