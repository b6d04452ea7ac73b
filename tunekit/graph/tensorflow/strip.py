"""Pass ``strip``: remove nodes that only matter for training or debugging.

Identity chains (left by variable reads and Keras layers), CheckNumerics, StopGradient and
PreventGradient pass their input through at inference; each costs an executor step. Their users
are rewired to the input. Graph inputs and outputs are kept by name.
"""

from __future__ import annotations

from tunekit.graph.pipeline import GraphPass
from tunekit.graph.tensorflow.graph import FrozenGraph

_PASS_THROUGH = {"Identity", "CheckNumerics", "StopGradient", "PreventGradient", "Snapshot"}


class Strip(GraphPass):
    name = "strip"
    framework = "tensorflow"
    order = 10

    def run(self, graph: FrozenGraph) -> FrozenGraph:
        import tensorflow as tf

        keep = set(graph.inputs) | set(graph.outputs)
        nodes = {n.name: n for n in graph.graph_def.node}
        alias: dict[str, str] = {}
        for node in graph.graph_def.node:
            data_inputs = [i for i in node.input if not i.startswith("^")]
            if node.op in _PASS_THROUGH and node.name not in keep and len(data_inputs) == 1:
                alias[node.name] = data_inputs[0]

        def target(name: str) -> str:
            control, bare = name.startswith("^"), name.lstrip("^")
            base, _, port = bare.partition(":")
            while base in alias and (not port or port == "0"):
                bare = alias[base]
                base, _, port = bare.partition(":")
            return ("^" + bare.partition(":")[0]) if control else bare

        out = tf.compat.v1.GraphDef()
        out.versions.CopyFrom(graph.graph_def.versions)
        out.library.CopyFrom(graph.graph_def.library)
        for name, node in nodes.items():
            if name in alias:
                continue
            copy = out.node.add()
            copy.CopyFrom(node)
            del copy.input[:]
            copy.input.extend(dict.fromkeys(target(i) for i in node.input))
        return graph.with_graph(out)
