"""Pass ``fold_batchnorm``: fold per-channel scale/shift after Conv2D/MatMul into the weights.

Keras 3 writes an inference BatchNormalization as plain arithmetic (``x * mul + sub``, with
``mul``/``sub`` constants once frozen and constant-folded), not as ``FusedBatchNorm``, so neither
TF's ``optimize_for_inference`` tool nor Grappler's remapper folds it: the graph keeps a full
Mul and Add pass over every conv output and the remapper finds no ``Conv2D+BiasAdd+Relu`` to fuse.
Here any chain of BiasAdd/Add/AddV2/Sub/Mul by constant per-channel vectors that follows a
Conv2D, DepthwiseConv2dNative or MatMul with constant weights becomes ``scale`` folded into the
weights and one BiasAdd (keeping the last node's name, so its consumers are unchanged).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from tunekit.adaptors.tensorflow.graph_optimization.frozen_graph import FrozenGraph
from tunekit.graph.pipeline import GraphPass

_LINEAR = {"Conv2D", "DepthwiseConv2dNative", "MatMul"}
_AFFINE = {"BiasAdd", "Add", "AddV2", "Sub", "Mul"}


def _base(name: str) -> str:
    return name.lstrip("^").partition(":")[0]


class FoldBatchNorm(GraphPass):
    name = "fold_batchnorm"
    framework = "tensorflow"
    order = 30

    def run(self, graph: FrozenGraph) -> FrozenGraph:
        import tensorflow as tf

        graph_def = tf.compat.v1.GraphDef()
        graph_def.CopyFrom(graph.graph_def)
        nodes = {n.name: n for n in graph_def.node}
        uses = Counter(_base(i) for n in graph_def.node for i in n.input)
        users: dict[str, list[Any]] = {}
        for node in graph_def.node:
            for i in node.input:
                users.setdefault(_base(i), []).append(node)
        removed: set[str] = set()
        for node in list(graph_def.node):
            if node.name in removed:
                continue
            folded = _fold(node, nodes, uses, users, set(graph.outputs), graph_def)
            removed.update(folded)
        keep = [n for n in graph_def.node if n.name not in removed]
        referenced = {_base(i) for n in keep for i in n.input} | set(graph.outputs)
        out = tf.compat.v1.GraphDef()
        out.versions.CopyFrom(graph_def.versions)
        out.library.CopyFrom(graph_def.library)
        out.node.extend(n for n in keep if n.op != "Const" or n.name in referenced)
        return graph.with_graph(out)


def _fold(node: Any, nodes: dict[str, Any], uses: Counter, users: dict[str, list[Any]],
          outputs: set[str], graph_def: Any) -> list[str]:
    """Fold the affine chain after ``node`` (a Conv2D/MatMul); the names of removed nodes."""
    import tensorflow as tf

    if node.op not in _LINEAR or node.attr["T"].type != tf.float32.as_datatype_enum:
        return []
    if not _channels_last(node) or len(node.input) < 2:
        return []
    weights_node = nodes.get(_base(node.input[1]))
    if weights_node is None or weights_node.op != "Const" or \
            node.input[1] not in (weights_node.name, f"{weights_node.name}:0"):
        return []
    weights = tf.make_ndarray(weights_node.attr["value"].tensor)
    chain, scale, shift = _affine_chain(node, nodes, uses, users, outputs,
                                        _out_channels(node, weights))
    if not any(n.op in ("Mul", "Sub", "Add", "AddV2") for n in chain):
        return []  # nothing beyond a plain BiasAdd: already the shape the remapper fuses
    _rewrite(node, weights_node, _scale(node, weights, scale), chain[-1], shift, graph_def)
    return [n.name for n in chain[:-1]]


def _affine_chain(node: Any, nodes: dict[str, Any], uses: Counter,
                  users: dict[str, list[Any]], outputs: set[str],
                  channels: int) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """The single-use chain of Identity and per-channel Mul/Sub/Add/BiasAdd nodes after
    ``node``, and the ``scale``/``shift`` per output channel it amounts to (``y·scale +
    shift``); the chain stops at the first node that is not such a step."""
    scale, shift = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    chain: list[Any] = []
    current = node
    while uses[current.name] == 1 and current.name not in outputs:
        (nxt,) = users[current.name]
        data = [i for i in nxt.input if not i.startswith("^")]
        if nxt.op == "Identity" and len(data) == 1:
            chain.append(nxt)
            current = nxt
            continue
        if nxt.op not in _AFFINE or len(data) != 2 or not _channels_last(nxt):
            break
        own = [d for d in data if _base(d) == current.name]
        other = [d for d in data if _base(d) != current.name]
        if len(own) != 1 or len(other) != 1 or \
                (nxt.op in ("Sub", "BiasAdd") and data[0] != own[0]):
            break
        vector = _channel_vector(nodes.get(_base(other[0])), channels)
        if vector is None:
            break
        if nxt.op == "Mul":
            scale, shift = scale * vector, shift * vector
        elif nxt.op == "Sub":
            shift = shift - vector
        else:
            shift = shift + vector
        chain.append(nxt)
        current = nxt
    return chain, scale, shift


def _rewrite(node: Any, weights_node: Any, scaled_weights: np.ndarray, last: Any,
             shift: np.ndarray, graph_def: Any) -> None:
    """``node`` reads ``scaled_weights`` (a new Const) and ``last`` becomes the BiasAdd of
    ``shift`` onto ``node``'s output, which skips the chain between them."""
    import tensorflow as tf

    scaled = graph_def.node.add()
    scaled.CopyFrom(weights_node)
    scaled.name = f"{node.name}/folded_weights"
    scaled.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(scaled_weights))
    node.input[1] = scaled.name
    bias = graph_def.node.add()
    bias.CopyFrom(scaled)
    bias.name = f"{last.name}/folded_bias"
    bias.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(shift.astype(np.float32)))
    last.op = "BiasAdd"
    last.ClearField("attr")
    last.attr["T"].type = tf.float32.as_datatype_enum
    last.attr["data_format"].s = b"NHWC"
    del last.input[:]
    last.input.extend([node.name, bias.name])


def _channels_last(node: Any) -> bool:
    """Whether ``node`` keeps channels on the last axis (reading a proto map entry would add it,
    hence the membership test first)."""
    return "data_format" not in node.attr or node.attr["data_format"].s == b"NHWC"


def _out_channels(node: Any, weights: np.ndarray) -> int:
    if node.op == "MatMul":
        return weights.shape[0] if _transposed(node) else weights.shape[1]
    if node.op == "DepthwiseConv2dNative":
        return weights.shape[2] * weights.shape[3]
    return weights.shape[3]


def _scale(node: Any, weights: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``weights`` with each output channel multiplied by its ``scale``."""
    if node.op == "MatMul" and _transposed(node):
        return (weights * scale[:, None]).astype(np.float32)
    if node.op == "DepthwiseConv2dNative":
        return (weights * scale.reshape(weights.shape[2:])).astype(np.float32)
    return (weights * scale).astype(np.float32)


def _transposed(node: Any) -> bool:
    return "transpose_b" in node.attr and node.attr["transpose_b"].b


def _channel_vector(const: Any, channels: int) -> np.ndarray | None:
    """A Const's value as one number per channel, if it broadcasts along the channel axis only."""
    import tensorflow as tf

    if const is None or const.op != "Const" or \
            const.attr["dtype"].type != tf.float32.as_datatype_enum:
        return None
    value = tf.make_ndarray(const.attr["value"].tensor)
    if any(d != 1 for d in value.shape[:-1]) or value.size not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1), (channels,)).astype(np.float32)
