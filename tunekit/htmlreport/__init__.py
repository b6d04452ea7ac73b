"""report.html: a tuning's report as one self-contained web page with figures.

:func:`render` turns a ``result.json`` mapping into the page; :mod:`~tunekit.htmlreport.views`
derives what it shows (per-trial rows, single-op fallbacks, final precisions, failures) and
:mod:`~tunekit.htmlreport.plots` draws the figures (inline SVG, :mod:`~tunekit.htmlreport.svg`).
"""

from __future__ import annotations

from pathlib import Path

from tunekit.errors import ConfigError
from tunekit.htmlreport.page import render
from tunekit.outputs import check_out
from tunekit.workspace import HTML_REPORT, RESULT, Workspace


def write_html(workspace: Path, out: Path | None = None, force: bool = False) -> Path:
    """Draw report.html again from a workspace's ``result.json`` (``tunekit report --html``):
    into the workspace, or to ``out``, which must not exist unless ``force``."""
    if out is not None and out.is_dir():
        raise ConfigError("--out", f"{str(out)!r} is a folder; give a file name such as "
                                   f"{str(out / HTML_REPORT)!r}")
    if out is not None:
        check_out(out, "--out", force)
    try:
        data = Workspace(workspace).read_json(RESULT)
    except ValueError as exc:  # JSONDecodeError
        raise ConfigError("workspace", f"{str(workspace / RESULT)!r} is not valid JSON "
                                       f"({exc}); tune again to rewrite it") from None
    target = out if out is not None else workspace / HTML_REPORT
    Workspace(target.parent).write_text(target.name, render(data))
    return target


__all__ = ["render", "write_html"]
