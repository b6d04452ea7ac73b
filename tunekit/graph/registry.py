"""Graph passes as plugins: entry-point group ``tunekit.passes``, one entry per pass.

An entry is named ``FRAMEWORK.NAME`` (``pytorch.fold_batchnorm = pkg.mod:FoldBatchNorm``) because
each framework has its own graph type and both have passes of the same name. tunekit declares its
built-in passes in its ``setup.cfg`` exactly so, and a third-party package adds one the same way;
the pass's ``order`` places it in the pipeline and ``graph_optimization.passes`` switches it by
``NAME``. Only the passes of the framework being optimized are imported.
"""

from __future__ import annotations

from tunekit import plugins
from tunekit.errors import PluginError
from tunekit.graph.pipeline import GraphPass

GROUP = "tunekit.passes"


def frameworks() -> list[str]:
    """The adaptor names that have passes installed (the prefixes of the entry names)."""
    return sorted({name.partition(".")[0] for name in plugins.names(GROUP)})


def available(framework: str) -> list[GraphPass]:
    """One instance of every installed pass for ``framework``, in pipeline order."""
    passes = []
    for name in plugins.names(GROUP):
        prefix, _, short = name.partition(".")
        if prefix != framework:
            continue
        cls = plugins.load(GROUP, name)
        if cls.framework != framework or cls.name != short:
            raise PluginError(f"passes plugin {name!r} declares framework {cls.framework!r} and "
                              f"name {cls.name!r}; its entry point must be named "
                              f"'{cls.framework}.{cls.name}'")
        passes.append(cls())
    return sorted(passes, key=lambda p: p.order)
