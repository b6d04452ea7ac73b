"""Pass ``strip``: remove nodes that only matter for training or debugging, and dead nodes.

Identity chains (left by variable reads and Keras layers), CheckNumerics, StopGradient and
PreventGradient pass their input through at inference; each costs an executor step. Their users
are rewired to the input. Debug ops are dropped with the control edges that wait on them:
Print/PrintV2, Assert, and TF2's form of an assert (an ``If`` whose branches only assert), plus
the ``NoOp`` that only gathered those side effects for the function's outputs. Then every node
the outputs do not depend on goes (unused branches). Graph inputs and outputs are kept by name.
"""

from __future__ import annotations

from typing import Any

from tunekit.adaptors.tensorflow.graph_optimization.frozen_graph import FrozenGraph
from tunekit.graph.pipeline import GraphPass

_PASS_THROUGH = {"Identity", "CheckNumerics", "CheckNumericsV2", "StopGradient",
                 "PreventGradient", "Snapshot"}
_DEBUG = {"Assert", "Print", "PrintV2"}
#: what the branch functions of a TF2 assert (``AssertGuard``, an ``If``) may hold besides Assert
_GUARD_BODY = _DEBUG | {"Identity", "NoOp", "Const", "Placeholder"}


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
        debug = _debug_nodes(graph.graph_def, keep)

        def target(name: str) -> str | None:
            control, bare = name.startswith("^"), name.lstrip("^")
            base, _, port = bare.partition(":")
            while base in alias and (not port or port == "0"):
                bare = alias[base]
                base, _, port = bare.partition(":")
            if control:
                base = bare.partition(":")[0]
                return None if base in debug else "^" + base
            return bare

        inputs = {name: [t for t in dict.fromkeys(map(target, node.input)) if t is not None]
                  for name, node in nodes.items() if name not in alias and name not in debug}
        live = _reachable(inputs, [n for n in keep if n in inputs])
        out = tf.compat.v1.GraphDef()
        out.versions.CopyFrom(graph.graph_def.versions)
        out.library.CopyFrom(graph.graph_def.library)
        for name, node in nodes.items():
            if name in live:
                copy = out.node.add()
                copy.CopyFrom(node)
                del copy.input[:]
                copy.input.extend(inputs[name])
        return graph.with_graph(out)


def _debug_nodes(graph_def: Any, keep: set[str]) -> set[str]:
    """Debug ops, assert guards, and the NoOps that only wait on them (to a fixpoint)."""
    bodies = {f.signature.name: {n.op for n in f.node_def}
              for f in graph_def.library.function}

    def guard(node: Any) -> bool:
        branches = [node.attr[k].func.name for k in ("then_branch", "else_branch")]
        ops = set().union(*(bodies.get(b, {"?"}) for b in branches))
        return ops <= _GUARD_BODY and bool(ops & _DEBUG)

    nodes = [n for n in graph_def.node if n.name not in keep]
    debug = {n.name for n in nodes
             if n.op in _DEBUG or (n.op in ("If", "StatelessIf") and guard(n))}
    while True:
        waiting = {n.name for n in nodes if n.op == "NoOp" and n.name not in debug
                   and all(i.startswith("^") and i[1:] in debug for i in n.input)}
        if not waiting:
            return debug
        debug |= waiting


def _reachable(inputs: dict[str, list[str]], roots: list[str]) -> set[str]:
    """The nodes ``roots`` depend on through data or control edges, roots included."""
    seen, stack = set(roots), list(roots)
    while stack:
        for source in inputs[stack.pop()]:
            base = source.lstrip("^").partition(":")[0]
            if base not in seen and base in inputs:
                seen.add(base)
                stack.append(base)
    return seen
