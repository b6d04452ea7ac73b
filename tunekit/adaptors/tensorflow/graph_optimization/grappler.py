"""Passes that run one Grappler optimizer each: TensorFlow's own rewrites, one switch per pass.

- ``constant_fold``: evaluates input-independent subgraphs, and folds the per-channel Mul/Add of
  an inference BatchNorm into the preceding Conv2D/MatMul weights;
- ``arithmetic``: algebraic simplification and deduplication of identical nodes (CSE);
- ``remapper``: fusions oneDNN runs as one kernel (Conv2D+BiasAdd+Relu, MatMul+BiasAdd+Relu/Gelu,
  FusedBatchNorm into Conv2D, ...);
- ``auto_mixed_precision``: bf16 where oneDNN supports it, casts at the borders (bf16 only).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

from tunekit.adaptors.tensorflow.graph_optimization.frozen_graph import FrozenGraph
from tunekit.graph.pipeline import GraphPass


class GrapplerPass(GraphPass):
    """Runs Grappler with exactly one optimizer switched on (``optimizer``)."""

    framework = "tensorflow"
    optimizer: ClassVar[str] = ""
    #: place unplaced nodes on the CPU first (the remapper needs it; bf16 AMP must not: on
    #: placed nodes it also converts ops, such as pooling, that stock TF has no bf16 kernel for)
    place_on_cpu: ClassVar[bool] = True

    def run(self, graph: FrozenGraph) -> FrozenGraph:
        return graph.with_graph(optimize(graph, self.optimizer, self.place_on_cpu))


def optimize(graph: FrozenGraph, optimizer: str, place_on_cpu: bool,
             preserve: Collection[str] = ()) -> Any:
    """``graph``'s GraphDef after one Grappler ``optimizer``.

    Grappler leaves the nodes it must preserve untouched: the fetched outputs, and here also
    the nodes named in ``preserve`` (added to the fetch list; every rewrite honours it, which is
    how :class:`AutoMixedPrecision` keeps single ops in fp32).
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph_def = tf.compat.v1.GraphDef()
    graph_def.CopyFrom(graph.graph_def)
    for node in graph_def.node:
        node.device = "/device:CPU:0" if place_on_cpu else ""
    with tf.Graph().as_default() as g:
        tf.compat.v1.import_graph_def(graph_def, name="")
        meta = tf.compat.v1.train.export_meta_graph(graph_def=g.as_graph_def(), graph=g)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(f"{n}:0" for n in [*graph.outputs, *sorted(preserve)])
    meta.collection_def["train_op"].CopyFrom(fetch)
    config = config_pb2.ConfigProto()
    rewriter = config.graph_options.rewrite_options
    rewriter.optimizers[:] = [optimizer]
    rewriter.min_graph_nodes = -1
    rewriter.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    return tf_optimizer.OptimizeGraph(config, meta)


class ConstantFold(GrapplerPass):
    name = "constant_fold"
    order = 20
    optimizer = "constfold"


class Arithmetic(GrapplerPass):
    name = "arithmetic"
    order = 40
    optimizer = "arithmetic"


class Remapper(GrapplerPass):
    name = "remapper"
    order = 60
    precisions = frozenset({"fp32"})
    optimizer = "remap"


class AutoMixedPrecision(GrapplerPass):
    """bf16 everywhere oneDNN allows, except the ops named in ``keep_fp32`` (the tuning's
    fallback): ops that only follow a kept op (its BiasAdd, activation, pooling) stay fp32 with
    it, as Grappler paints bf16 regions from the ops it converts."""

    name = "auto_mixed_precision"
    order = 50
    precisions = frozenset({"bf16"})
    optimizer = "auto_mixed_precision_onednn_bfloat16"
    place_on_cpu = False

    def __init__(self, keep_fp32: Collection[str] = ()) -> None:
        self.keep_fp32 = frozenset(keep_fp32)

    def run(self, graph: FrozenGraph) -> FrozenGraph:
        return graph.with_graph(optimize(graph, self.optimizer, self.place_on_cpu,
                                         self.keep_fp32))
