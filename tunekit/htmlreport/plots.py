"""The figures of report.html, drawn with matplotlib (Agg) and embedded as base64 PNG.

Each function returns a ``data:image/png;base64,…`` URI, or None when there is nothing to draw,
so the page holds its pictures and opens anywhere, offline, as one file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from tunekit.htmlreport.views import Fallback, ReportView, scale

PASS, MISS, FAIL, FP32, TARGET = "#1a7f37", "#cf7a00", "#c62828", "#555555", "#c62828"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _uri(figure: Any, left: float = 0.9, bottom: float = 0.55, hspace: float = 0.35) -> str:
    """The figure as an embeddable PNG data URI, and closed. Margins are fixed in inches
    (``left``, ``bottom``) rather than fitted: tight_layout draws the figure once more, and
    every tuning pays for the page at its end (~30% of the time here)."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=left / width, right=1 - 0.2 / width, bottom=bottom / height,
                           top=1 - 0.3 / height, hspace=hspace)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, pil_kwargs={"compress_level": 1})
    _pyplot().close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def trials_figure(view: ReportView) -> str | None:
    """Metric per trial against the target and FP32 lines; below it, the speed objective per
    trial against the FP32 model's (measured beside each trial where it drifts)."""
    if not view.trials:
        return None
    plt = _pyplot()
    name = view.speed_objective
    timed = [t for t in view.trials if name and name in t.details]
    rows = 2 if timed else 1
    figure, axes = plt.subplots(rows, 1, figsize=(9, 3.2 * rows), sharex=True, squeeze=False)
    _metric_panel(axes[0][0], view)
    if timed:
        _speed_panel(axes[1][0], view, timed)
    axes[-1][0].set_xlabel("trial")
    from matplotlib.ticker import MaxNLocator

    axes[-1][0].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    numbers = [t.number for t in view.trials]  # half a trial of room: one trial is no range
    axes[-1][0].set_xlim(min(numbers) - 0.5, max(numbers) + 0.5)
    return _uri(figure, hspace=0.08)


def _metric_panel(ax: Any, view: ReportView) -> None:
    for accepted, colour, marker, label in ((True, PASS, "o", "meets the goal"),
                                            (False, MISS, "x", "misses the goal")):
        points = [(t.number, t.metric) for t in view.trials
                  if not t.failed and t.metric is not None and t.accepted == accepted]
        if points:
            ax.scatter(*zip(*points), color=colour, marker=marker, label=label, zorder=3)
    ax.axhline(view.target, color=TARGET, linewidth=1.2, label=f"target {view.target:.4g}")
    ax.axhline(view.baseline, color=FP32, linestyle="--", linewidth=1,
               label=f"FP32 {view.baseline:.4g}")
    failed = [t.number for t in view.failures()]
    if failed:
        bottom = ax.get_ylim()[0]
        ax.scatter(failed, [bottom] * len(failed), color=FAIL, marker="v", clip_on=False,
                   label="failed (no metric)", zorder=3)
    ax.set_ylabel("metric")
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)


def _speed_panel(ax: Any, view: ReportView, timed: Sequence[Any]) -> None:
    name = view.speed_objective or ""
    unit = view.objectives[name].get("unit", "")
    values = [t.details[name] for t in timed]
    factor, label = scale(unit, values)
    ax.scatter([t.number for t in timed], [v * factor for v in values], color=PASS,
               label="candidate", zorder=3)
    beside = [(t.number, t.details[f"{name}.fp32"]) for t in timed if f"{name}.fp32" in t.details]
    if beside:
        ax.scatter([n for n, _ in beside], [v * factor for _, v in beside], color=FP32,
                   marker="_", s=200, label="FP32, timed beside it")
    fp32 = view.fp32_value()
    if fp32 is not None:
        ax.axhline(fp32 * factor, color=FP32, linestyle="--", linewidth=1,
                   label="FP32 baseline")
    ax.set_ylabel(f"{name} ({label})" if label else name)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)


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
    plt = _pyplot()
    heights = [len(bars) * 0.3 + 1.0 for _, bars in panels]
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights)), squeeze=False,
                                gridspec_kw={"height_ratios": heights})
    for ax, (title, bars) in zip(axes[:, 0], panels):
        labels = [label for label, _ in reversed(bars)]
        values = [value for _, value in reversed(bars)]
        ax.barh(range(len(bars)), values, color=["#1f6feb" if v >= 0 else FAIL for v in values])
        ax.set_yticks(range(len(bars)), labels, fontsize="small")
        ax.set_title(title, fontsize="medium")
        ax.axvline(0, color=FP32, linewidth=0.8)
        ax.grid(axis="x", alpha=0.3)
    longest = max(len(label) for _, bars in panels for label, _ in bars)
    return _uri(figure, left=min(4.0, 0.3 + 0.07 * longest))


def pareto_figure(view: ReportView) -> str | None:
    """Metric against speed-up for every trial whose speed was measured, FP32 at 1.0, the
    target line, and the Pareto front joined and labelled."""
    points = [(s, t) for t in view.trials
              if not t.failed and t.metric is not None
              and (s := view.speedup(t)) is not None]
    if not points:
        return None
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(9, 4.5))
    for accepted, colour, marker, label in ((True, PASS, "o", "meets the goal"),
                                            (False, MISS, "x", "misses the goal")):
        chosen = [(s, t.metric) for s, t in points if t.accepted == accepted]
        if chosen:
            ax.scatter(*zip(*chosen), color=colour, marker=marker, label=label, zorder=3)
    front = sorted((s, t) for s, t in points if t.number in view.pareto_numbers)
    if front:
        ax.plot([s for s, _ in front], [t.metric for _, t in front], color="#1f6feb",
                marker="D", markersize=9, markerfacecolor="none", linewidth=1.5,
                label="Pareto front", zorder=4)
        for s, t in front:
            ax.annotate(f"trial {t.number}", (s, t.metric), textcoords="offset points",
                        xytext=(6, 6), fontsize="small")
    ax.scatter([1.0], [view.baseline], color=FP32, marker="*", s=160, label="FP32", zorder=4)
    ax.axhline(view.target, color=TARGET, linewidth=1.2, label=f"target {view.target:.4g}")
    ax.set_xlabel(view.speed_label)
    ax.set_ylabel("metric")
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    return _uri(figure)


__all__ = ["pareto_figure", "sensitivity_figure", "trials_figure"]
