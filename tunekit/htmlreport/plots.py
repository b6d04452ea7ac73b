"""The figures of report.html, drawn as inline SVG (:mod:`tunekit.htmlreport.svg`).

Each function returns an ``<svg>`` element, or None when there is nothing to draw, so the page
holds its pictures and opens anywhere, offline, as one file. Drawn as text rather than with
matplotlib because every tuning pays for the page at its end: matplotlib's import and PNG
encoding cost 0.3–0.8 s on every tuning; this costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunekit.htmlreport.svg import CHAR_PX, Axes, bar, document, span, title
from tunekit.htmlreport.views import Fallback, ReportView, TrialView, scale

PASS, MISS, FAIL, FP32, TARGET = "#1a7f37", "#cf7a00", "#c62828", "#555555", "#c62828"
FRONT, BAR = "#1f6feb", "#1f6feb"
WIDTH, LEFT, PLOT_W = 900, 78, 600  # figure, left margin and plot width in pixels


def trials_figure(view: ReportView) -> str | None:
    """Metric per trial against the target and FP32 lines; below it, the speed objective per
    trial against the FP32 model's (measured beside each trial where it drifts)."""
    if not view.trials:
        return None
    name = view.speed_objective
    timed = [t for t in view.trials if name and name in t.details]
    numbers = [t.number for t in view.trials]  # half a trial of room: one trial is no range
    xlim = (min(numbers) - 0.5, max(numbers) + 0.5)
    metric = _metric_panel(view, xlim)
    metric.frame("trial", "metric", integer_x=True, show_x=not timed)
    panels = [metric]
    if timed:
        speed = _speed_panel(view, timed, xlim, metric.top + metric.height + 12)
        panels.append(speed)
    height = panels[-1].top + panels[-1].height + 44
    return document(WIDTH, height, "".join(p.svg() for p in panels),
                    "metric and speed per trial")


def _metric_panel(view: ReportView, xlim: tuple[float, float]) -> Axes:
    scored = [t for t in view.trials if not t.failed and t.metric is not None]
    ylim = span([t.metric or 0.0 for t in scored] + [view.target, view.baseline])
    axes = Axes(LEFT, 10, PLOT_W, 250, xlim, ylim)
    for accepted, colour, kind, name in ((True, PASS, "o", "meets the goal"),
                                         (False, MISS, "x", "misses the goal")):
        chosen = [t for t in scored if t.accepted == accepted]
        axes.points([(t.number, t.metric or 0.0) for t in chosen], kind, colour, name,
                    [_tip(t, f"metric {t.metric:.4f}") for t in chosen])
    axes.hline(view.target, TARGET, f"target {view.target:.4g}")
    axes.hline(view.baseline, FP32, f"FP32 {view.baseline:.4g}", dashed=True)
    failed = view.failures()
    axes.points([(t.number, ylim[0]) for t in failed], "v", FAIL, "failed (no metric)",
                [_tip(t, "failed") for t in failed])
    return axes


def _speed_panel(view: ReportView, timed: Sequence[TrialView], xlim: tuple[float, float],
                 top: float) -> Axes:
    name = view.speed_objective or ""
    unit = view.objectives[name].get("unit", "")
    values = [t.details[name] for t in timed]
    factor, label = scale(unit, values)
    beside = [(t.number, t.details[f"{name}.fp32"] * factor) for t in timed
              if f"{name}.fp32" in t.details]
    fp32 = view.fp32_value()
    tops = [v * factor for v in values] + [v for _, v in beside] + \
        ([fp32 * factor] if fp32 is not None else [])
    axes = Axes(LEFT, top, PLOT_W, 200, xlim, (0.0, span(tops)[1]))
    axes.points([(t.number, v * factor) for t, v in zip(timed, values)], "o", PASS, "candidate",
                [_tip(t, f"{name} {v * factor:.4g} {label}") for t, v in zip(timed, values)])
    axes.points(beside, "_", FP32, "FP32, timed beside it",
                [f"trial {n}: FP32 {v:.4g} {label}" for n, v in beside])
    if fp32 is not None:
        axes.hline(fp32 * factor, FP32, "FP32 baseline", dashed=True)
    axes.frame("trial", f"{name} ({label})" if label else name, integer_x=True)
    return axes


def _tip(trial: TrialView, what: str) -> str:
    return f"trial {trial.number}: {what} ({trial.label})"


def sensitivity_figure(fallbacks: Sequence[Fallback],
                       proxies: dict[str, dict[str, float]], top: int = 15) -> str | None:
    """Bars per op, one panel under the other: the metric each measured single-op fallback won
    back, then each proxy's scores (the ``top`` highest per panel)."""
    panels: list[tuple[str, list[tuple[str, float]]]] = []
    if fallbacks:
        panels.append(("measured: metric won back by the fallback",
                       [(f"{f.op.name} → {f.precision}, trial {f.trial}", f.metric_change)
                        for f in fallbacks[:top]]))
    for source, scores in proxies.items():
        ranked = sorted(scores.items(), key=lambda item: -item[1])[:top]
        panels.append((f"proxy: {source} (higher: more sensitive)", ranked))
    if not panels:
        return None
    longest = max(len(name) for _, bars in panels for name, _ in bars)
    left = min(380.0, 16 + CHAR_PX * longest)
    width = max(WIDTH, left + 520)
    body, y = [], 0.0
    for heading, bars in panels:
        values = [value for _, value in bars]
        low, high = span(values + [0.0], pad=0.12)
        axes = Axes(left, y + 26, width - left - 90, 22.0 * len(bars), (low, high), (0.0, 1.0))
        body.append(title(left, y + 18, heading))
        axes.frame("", "", show_y=False)
        axes.parts.append(f'<path d="M{axes.px(0.0):.1f},{axes.top:.1f}V'
                          f'{axes.top + axes.height:.1f}" stroke="{FP32}"/>')
        for row, (name, value) in enumerate(bars):
            axes.parts.append(bar(axes, row, len(bars), value,
                                  BAR if value >= 0 else FAIL, name))
        body.append(axes.svg())
        y = axes.top + axes.height + 26
    return document(width, y, "".join(body), "per-op sensitivity")


def pareto_figure(view: ReportView) -> str | None:
    """Metric against speed-up for every trial whose speed was measured, FP32 at 1.0, the
    target line, and the Pareto front joined and labelled."""
    points = [(s, t) for t in view.trials
              if not t.failed and t.metric is not None
              and (s := view.speedup(t)) is not None]
    if not points:
        return None
    xlim = span([s for s, _ in points] + [1.0], pad=0.1)
    ylim = span([t.metric or 0.0 for _, t in points] + [view.target, view.baseline], pad=0.1)
    axes = Axes(LEFT, 10, PLOT_W, 320, xlim, ylim)
    for accepted, colour, kind, name in ((True, PASS, "o", "meets the goal"),
                                         (False, MISS, "x", "misses the goal")):
        chosen = [(s, t) for s, t in points if t.accepted == accepted]
        axes.points([(s, t.metric or 0.0) for s, t in chosen], kind, colour, name,
                    [_tip(t, f"metric {t.metric:.4f}, {s:.2f}×") for s, t in chosen])
    front = sorted((s, t.metric or 0.0, t.number) for s, t in points
                   if t.number in view.pareto_numbers)
    if front:
        axes.line([(s, m) for s, m, _ in front], FRONT)
        axes.points([(s, m) for s, m, _ in front], "D", FRONT, "Pareto front")
        for s, m, number in front:
            axes.note(s, m, f"trial {number}")
    axes.points([(1.0, view.baseline)], "*", FP32, "FP32", [f"FP32: metric {view.baseline:.4f}"])
    axes.hline(view.target, TARGET, f"target {view.target:.4g}")
    axes.frame(view.speed_label, "metric")
    return document(WIDTH, axes.top + axes.height + 44, axes.svg(),
                    "accuracy against speed-up, Pareto front")


__all__ = ["pareto_figure", "sensitivity_figure", "trials_figure"]
