"""One candidate: ONNX Runtime's quantizer called with the trial's per-op choices.

Static int8 ops go through ``quantize_static`` once (QDQ or QOperator, the adaptor's ``format``),
fed the precomputed ranges (:mod:`.calibration`) and ``TensorQuantOverrides`` that carry each
op's choices: its activation tensors' integer type (``activation`` uint8/int8) and symmetry
(``scheme``), its weight's per-channel axis (``granularity``; QOperator's quantizer only has a
model-wide flag, so there the space offers per_channel alone). Dynamic int8 ops then go through
``quantize_dynamic``, one call per granularity; a dynamic Gemm is first rewritten as MatMul
(+ Add) (:mod:`.gemm`: ONNX Runtime quantizes MatMul dynamically, not Gemm). Every other
tunable op is listed in ``nodes_to_exclude``/left out of ``nodes_to_quantize`` and stays float.
Graph inputs and outputs stay float in both formats.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                      quantize_static)

from tunekit.adaptors.onnxrt.calibration import Ranges, write_ranges
from tunekit.adaptors.onnxrt.gemm import gemms_as_matmuls
from tunekit.adaptors.onnxrt.graph import COMPUTE, DYNAMIC, FOLLOWERS, JOINS, Op, tensor_owners
from tunekit.adaptors.onnxrt.runtime import quiet
from tunekit.space import OpConfig, OpKey

FORMATS: Mapping[str, QuantFormat] = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}


def build(model: onnx.ModelProto, ops: Mapping[OpKey, Op], config: Mapping[OpKey, OpConfig],
          ranges: Mapping[str, Ranges], fmt: str) -> onnx.ModelProto:
    """The candidate of ``config`` (see the module docstring); ``model`` is untouched."""
    static = [k for k, c in config.items() if c.precision == "int8" and c.approach == "static"]
    dynamic = [k for k, c in config.items() if c.precision == "int8" and c.approach == "dynamic"]
    with tempfile.TemporaryDirectory(prefix="tunekit-onnxrt-") as folder, quiet():
        current: onnx.ModelProto | Path = model
        if static:
            current = _static(model, ops, config, ranges, fmt, Path(folder))
        renamed: dict[str, str] = {}  # a dynamic Gemm's name → its MatMul's
        if dynamic:
            current, renamed = _for_dynamic(current, [ops[k].node.name for k in dynamic])
        for granularity in ("per_channel", "per_tensor"):
            names = [renamed.get(ops[k].node.name, ops[k].node.name) for k in dynamic
                     if config[k].granularity == granularity]
            if names:
                target = Path(folder, f"dynamic-{granularity}.onnx")
                quantize_dynamic(current, target, op_types_to_quantize=list(DYNAMIC),
                                 per_channel=granularity == "per_channel",
                                 weight_type=QuantType.QInt8, nodes_to_quantize=names)
                current = target
        if isinstance(current, Path):
            return onnx.load(current)
        if current is not model:
            return current
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _for_dynamic(current: onnx.ModelProto | Path,
                 names: Sequence[str]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy of ``current`` ready for ``quantize_dynamic`` on the nodes ``names``: Gemms
    rewritten as MatMul (+ Add) (:mod:`.gemm`; the returned mapping names each one's MatMul),
    and a node's data input routed through an Identity where ONNX Runtime would name its int8
    copy ``X_quantized`` like a tensor the static pass already wrote (QOperator quantizes ``X``
    when an int8 op wrote it), which ONNX Runtime rejects as a duplicate definition."""
    loaded = onnx.load(current) if isinstance(current, Path) else current
    gemms = [n.name for n in loaded.graph.node if n.name in names and n.op_type == "Gemm"]
    loaded, renamed = gemms_as_matmuls(loaded, gemms)
    chosen = {renamed.get(name, name) for name in names}
    tensors = {o for n in loaded.graph.node for o in n.output}
    nodes: list[onnx.NodeProto] = []
    for node in loaded.graph.node:
        if node.name in chosen and f"{node.input[0]}_quantized" in tensors:
            fresh = f"{node.name}/dynamic_input"
            nodes.append(onnx.helper.make_node("Identity", [node.input[0]], [fresh], name=fresh))
            node.input[0] = fresh
        nodes.append(node)
    del loaded.graph.node[:]
    loaded.graph.node.extend(nodes)
    return loaded, renamed


def _static(model: onnx.ModelProto, ops: Mapping[OpKey, Op], config: Mapping[OpKey, OpConfig],
            ranges: Mapping[str, Ranges], fmt: str, folder: Path) -> Path:
    owners = tensor_owners(model, ops, config)
    cache = folder / "ranges.json"
    write_ranges(ranges, owners, cache)
    overrides: dict[str, list[dict[str, Any]]] = {
        tensor: [{"quant_type": _TYPES[c.activation or "uint8"], "symmetric": c.scheme == "sym"}]
        for tensor, c in owners.items()}
    per_channel = False
    for key, op in ops.items():
        c = config[key]
        if c.precision == "int8" and c.approach == "static" and op.weight is not None \
                and c.granularity == "per_channel":
            per_channel = True
            if fmt == "qdq":
                overrides[op.weight] = [{"axis": op.axis}]
    chosen = {op.node.name for key, op in ops.items()
              if config[key].precision == "int8" and config[key].approach == "static"}
    excluded = [n.name for n in model.graph.node
                if n.op_type in COMPUTE + JOINS and n.name not in chosen]
    target = folder / "static.onnx"
    quantize_static(model, target, None, quant_format=FORMATS[fmt],
                    op_types_to_quantize=list(COMPUTE + JOINS + FOLLOWERS),
                    per_channel=per_channel and fmt == "qoperator",
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=excluded, calibrate_method=CalibrationMethod.MinMax,
                    calibration_cache_path=cache,
                    extra_options={"TensorQuantOverrides": overrides,
                                   "ForceQuantizeNoInputCheck": False,
                                   # ONNX Runtime drops a Relu after a quantized op when
                                   # activations are asymmetric model-wide; a symmetric tensor
                                   # would then keep the negatives the Relu removed
                                   "QDQKeepRemovableActivations": any(
                                       c.scheme == "sym" for c in owners.values())})
    return target
