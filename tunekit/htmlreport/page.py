"""report.html: one self-contained page (inline CSS, inline SVG figures, no script, no link out).

Every value that comes from the tuning (op names, configs, error messages) is HTML-escaped:
an error message may quote user code or input, and the page must show it, not run it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from tunekit.htmlreport import plots
from tunekit.htmlreport.views import ReportView, TrialView, scale
from tunekit.result import STATUS_TEXT

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#1f2328;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fallback td{background:#fff4d6;font-weight:600}tr.failed td{background:#ffebe9}
tr.pass td.goal{color:#1a7f37;font-weight:600}
.met{color:#1a7f37;font-weight:700}.notmet{color:#c62828;font-weight:700}
figure{margin:.6em 0}svg.plot{max-width:100%;height:auto;border:1px solid #d0d7de}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.7em;overflow-x:auto;
white-space:pre-wrap;word-break:break-word}
p.how{color:#57606a;font-size:.92em}nav a{margin-right:1em}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: float | None, pattern: str = ".4f") -> str:
    return "—" if value is None else format(value, pattern)


def _table(head: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]]) -> str:
    """A table from escaped cells; each row comes with its CSS class (may be empty). Cells
    are already HTML: callers escape what they put in."""
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for css, cells in rows:
        attr = f' class="{css}"' if css else ""
        out.append(f"<tr{attr}>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def _cell(value: Any, numeric: bool = False, css: str = "") -> str:
    classes = " ".join(c for c in ("num" if numeric else "", css) if c)
    return f'<td class="{classes}">{_e(value)}</td>' if classes else f"<td>{_e(value)}</td>"


def _figure(svg: str | None) -> str:
    """A figure from :mod:`~tunekit.htmlreport.plots` (already escaped SVG that names itself),
    or nothing where there was nothing to draw."""
    return f"<figure>{svg}</figure>" if svg else ""


def _section(anchor: str, title: str, how: str, body: str) -> str:
    return (f'<section id="{anchor}"><h2>{_e(title)}</h2>\n<p class="how">{_e(how)}</p>\n'
            f"{body}</section>")


def render(data: Mapping[str, Any]) -> str:
    """The whole page for a ``result.json`` mapping."""
    view = ReportView(data)
    sections = [_header(view), _trials(view), _sensitivity(view), _final_ops(view),
                _tradeoff(view), _failures(view)]
    nav = " ".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in (
        ("trials", "Trials"), ("sensitivity", "Per-op sensitivity"),
        ("precisions", "Final precisions"), ("tradeoff", "Accuracy–speed"),
        ("failures", f"Failures ({len(view.failures())})")))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>tunekit report: {_e(data.get('model', 'model'))}</title>"
            f"<style>{CSS}</style></head><body>\n<h1>tunekit tuning report</h1>\n"
            f"<nav>{nav}</nav>\n" + "\n".join(sections) + "\n</body></html>\n")


def _speed_text(view: ReportView, trial: TrialView | None) -> str:
    """The speed line of :class:`tunekit.speed.Speed` for a trial timed beside FP32 (``4.21×
    faster than FP32 (2.870 vs 12.100 ms, batch 64, ±3%)``), else the objective's ratio."""
    if trial is not None and trial.speed is not None:
        return trial.speed.text()
    if trial is None or (ratio := view.speedup(trial)) is None:
        return "not measured"
    return f"{ratio:.2f}× FP32 in {view.speed_objective} (> 1 better)"


def _speed_cell(view: ReportView, trial: TrialView) -> str:
    """``3.58×``, flagged ``±23% noisy`` or ``busy`` where the timing was disturbed."""
    if trial.speed is not None:
        return trial.speed.cell()
    return _num(view.speedup(trial), ".2f")


def _header(view: ReportView) -> str:
    data, best = view.data, view.best
    met = bool(data.get("met"))
    outcome = (f'<span class="{"met" if met else "notmet"}">'
               f'{"goal met" if met else "goal NOT met"}</span>: '
               f'{_e(STATUS_TEXT.get(data.get("status", ""), data.get("status", "")))}')
    best_text = "none (every trial failed)" if best is None else \
        f"trial {best.number}: metric {_num(best.metric)}, {best.label}"
    rows = [("model", _e(data.get("model", "—"))),
            ("framework", _e(data.get("framework", "—"))),
            ("strategy", _e(data.get("strategy", "—"))), ("outcome", outcome),
            ("FP32 baseline metric", _e(_num(view.baseline))),
            ("target", _e(("≥ " if view.higher_is_better else "≤ ") + _num(view.target))),
            ("best trial", _e(best_text)), ("best trial's speed", _e(_speed_text(view, best))),
            ("work", _e(f"{data.get('trials', len(view.trials))} trial(s), "
                        f"{data.get('evaluations', '—')} evaluation(s) incl. the FP32 baseline, "
                        f"{data.get('wall_s', 0.0):.1f} s"))]
    body = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + \
        "</table>"
    return f'<section id="summary">{body}</section>'


def _trials(view: ReportView) -> str:
    name = view.speed_objective
    factor, unit = scale(view.objectives.get(name or "", {}).get("unit", ""),
                         [t.details[name] for t in view.trials if name and name in t.details])
    head = ["trial", "config (changes from the default)", "metric", "meets goal",
            f"{name} ({unit})" if name else "objective", view.speed_column, "duration s"]
    rows = []
    for t in view.trials:
        value = t.details.get(name or "")
        metric = "failed (see Failures)" if t.failed else _num(t.metric)
        rows.append(("failed" if t.failed else "pass" if t.accepted else "", [
            _cell(t.number, True), _cell(t.label), _cell(metric, not t.failed),
            _cell("yes" if t.accepted else "no", css="goal"),
            _cell(_num(None if value is None else value * factor, ".4g"), True),
            _cell(_speed_cell(view, t), True),
            _cell(_num(t.duration_s, ".2f"), True)]))
    how = ("Top: the metric of each trial (green: meets the goal, orange: misses it, red "
           "triangles: failed) against the target (solid red) and the FP32 model (dashed). "
           "Bottom: the speed objective of the trials that met the goal (costly objectives are "
           "measured only for them), with the FP32 model timed right beside each one (grey "
           "dashes) and the FP32 baseline (dashed).")
    return _section("trials", "Metric and speed per trial", how,
                    _figure(plots.trials_figure(view)) +
                    _table(head, rows))


def _sensitivity(view: ReportView) -> str:
    fallbacks, proxies = view.fallbacks, view.sensitivity()
    how = ("Measured: each trial that differs from another evaluated trial in one op only, "
           "moved to a wider precision (int8 → bf16/fp32, bf16 → fp32); the metric it won back "
           "is what that op costs in the narrower one (largest first). Proxy: the per-op "
           "scores the strategy computed before evaluating (higher: more sensitive), by source"
           + ("." if proxies else "; this strategy recorded none."))
    if not fallbacks and not proxies:
        return _section("sensitivity", "Per-op sensitivity", how,
                        "<p>No single-op fallback was evaluated and the strategy recorded no "
                        "proxy scores.</p>")
    rows = [("", [_cell(f.op.name), _cell(f.op.type), _cell(f.precision), _cell(f.trial, True),
                  _cell(f.reference, True),
                  _cell(f"{f.metrics[0]:.4f} → {f.metrics[1]:.4f}", True),
                  _cell(f"{f.metric_change:+.4f}", True),
                  _cell(_num(f.speedup, ".2f"), True)]) for f in fallbacks]
    body = _figure(plots.sensitivity_figure(fallbacks, proxies))
    if fallbacks:
        body += "<h3>Measured single-op fallbacks</h3>" + _table(
            ["op", "type", "fell back to", "trial", "compared with trial", "metric",
             "metric won back", view.speed_column], rows)
    if proxies:
        ops = sorted({op for scores in proxies.values() for op in scores},
                     key=lambda op: -max(s.get(op, float("-inf")) for s in proxies.values()))
        body += "<h3>Proxy scores</h3>" + _table(
            ["op", *proxies], [("", [_cell(op)] + [_cell(_num(s.get(op), ".4g"), True)
                                                    for s in proxies.values()]) for op in ops])
    return _section("sensitivity", "Per-op sensitivity", how, body)


def _final_ops(view: ReportView) -> str:
    ops = view.final_ops()
    how = ("The precision of every tunable op in the returned model; highlighted rows are ops "
           "that fell back from the default precision, with what the fallback was measured to "
           "win back where a single-op pair of trials measured it (see Per-op sensitivity). "
           "int8 parameters: approach, scheme, granularity, calibration algorithm.")
    if not ops:
        return _section("precisions", "Final precision of every op", how,
                        "<p>No model was returned: every trial failed.</p>")
    counts = ", ".join(f"{p}×{n}" for p, n in sorted((view.data.get("precisions") or {}).items()))
    measured: dict[str, str] = {}  # op → the largest measured gain of its fallback
    for f in view.fallbacks:
        measured.setdefault(f.op.name, f"{f.metric_change:+.4f} (trial {f.trial} vs "
                                       f"{f.reference})")
    rows = [("fallback" if row.fell_back else "", [
        _cell(row.op.name), _cell(row.op.type), _cell(row.config.precision),
        _cell(", ".join(row.config.items().values()) or "—"),
        _cell(row.default.precision if row.default else "—"),
        _cell(measured.get(row.op.name, "not measured") if row.fell_back else "")])
        for row in ops]
    fell = sum(row.fell_back for row in ops)
    return _section("precisions", "Final precision of every op", how,
                    f"<p>{_e(counts)}; {fell} op(s) fell back.</p>" + _table(
                        ["op", "type", "precision", "int8 parameters", "default",
                         "fallback won back (metric)"], rows))


def _tradeoff(view: ReportView) -> str:
    how = ("Each trial whose speed was measured, as metric against speed-up over FP32 (the "
           "FP32 model is the star at 1.0). The Pareto front (blue diamonds, joined) holds the "
           "passing trials that no other passing trial beats in the metric and every "
           "objective: pick one from result.json's pareto_front to trade accuracy for speed.")
    figure = plots.pareto_figure(view)
    if figure is None:
        return _section("tradeoff", "Accuracy–speed trade-off", how,
                        "<p>No trial's speed was measured (no trial met the goal, or the "
                        "tuning has no speed objective).</p>")
    front = [t for t in view.trials if t.number in view.pareto_numbers]
    rows = [("pass", [_cell(t.number, True), _cell(_num(t.metric), True),
                      _cell(_speed_cell(view, t), True), _cell(t.label)])
            for t in front]
    return _section("tradeoff", "Accuracy–speed trade-off", how,
                    _figure(figure) +
                    _table(["trial", "metric", view.speed_column, "config"], rows))


def _failures(view: ReportView) -> str:
    failed = view.failures()
    how = "Every failed trial with its full error message, as the adaptor or your code raised it."
    if not failed:
        return _section("failures", "Failures", how, "<p>No trial failed.</p>")
    body = "".join(f"<h3>trial {t.number}: {_e(t.label)}</h3><pre>{_e(t.error or 'no message')}"
                   "</pre>" for t in failed)
    return _section("failures", f"Failures ({len(failed)})", how, body)


__all__ = ["render"]
