"""A small inline-SVG plotting kit for report.html: axes with nice ticks, grid, markers,
reference lines, bars and a legend, written as text.

Every tuning writes report.html at its end, so its figures must cost milliseconds: drawing them
with matplotlib cost 0.3–0.8 s per tuning (the largest fixed cost on a small model), most of it
the import and PNG encoding. SVG text is also sharp at any zoom and searchable in the page.
Every piece of text that reaches the markup goes through :func:`_e`: op names come from the
user's model. No ``url(...)``, script or external reference is written, so the page stays one
self-contained file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif"'
GRID, AXIS, TEXT = "#d0d7de", "#57606a", "#1f2328"
#: pixels one character of the 11px font takes, to size margins for labels
CHAR_PX = 6.2


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _f(value: float) -> str:
    return f"{value:.1f}"


def span(values: Iterable[float], pad: float = 0.06) -> tuple[float, float]:
    """The range of ``values`` widened by ``pad`` of it on each side; a single value (or none)
    gets a range around it, so a lone point or a flat line is drawn inside the frame."""
    seen = [v for v in values if math.isfinite(v)]
    lo, hi = (min(seen), max(seen)) if seen else (0.0, 1.0)
    width = hi - lo
    if width <= 0:
        width = abs(hi) * 0.1 or 1.0
        return lo - width / 2, hi + width / 2
    return lo - pad * width, hi + pad * width


def ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """About ``count`` round values (steps of 1, 2, 2.5 or 5 times a power of ten) in
    ``[lo, hi]``; whole numbers only where ``integer`` (trial numbers)."""
    raw = (hi - lo) / max(count, 1)
    if raw <= 0:
        return [lo]
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, math.ceil(step))
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def label(value: float) -> str:
    """A tick label: short, without float noise (``0.3``, not ``0.30000000000000004``)."""
    return format(round(value, 10), ".6g")


def marker(kind: str, x: float, y: float, colour: str) -> str:
    """One marker centred at pixel (x, y): ``o`` dot, ``x`` cross, ``v`` triangle down,
    ``D`` hollow diamond, ``*`` star, ``_`` short dash."""
    if kind == "o":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="4" fill="{colour}"/>'
    if kind == "x":
        return (f'<path d="M{_f(x - 4)},{_f(y - 4)}L{_f(x + 4)},{_f(y + 4)}M{_f(x - 4)},'
                f'{_f(y + 4)}L{_f(x + 4)},{_f(y - 4)}" stroke="{colour}" stroke-width="2"/>')
    if kind == "_":
        return (f'<path d="M{_f(x - 8)},{_f(y)}H{_f(x + 8)}" stroke="{colour}" '
                'stroke-width="2.5"/>')
    shapes = {"v": [(-5, -4), (5, -4), (0, 5)], "D": [(0, -7), (6, 0), (0, 7), (-6, 0)],
              "*": [(9 * (1 if i % 2 == 0 else 0.45) * math.sin(i * math.pi / 5),
                     -9 * (1 if i % 2 == 0 else 0.45) * math.cos(i * math.pi / 5))
                    for i in range(10)]}
    points = " ".join(f"{_f(x + dx)},{_f(y + dy)}" for dx, dy in shapes[kind])
    paint = f'fill="none" stroke="{colour}" stroke-width="1.8"' if kind == "D" else \
        f'fill="{colour}"'
    return f'<polygon points="{points}" {paint}/>'


@dataclass
class Axes:
    """One plot panel: a pixel box (left, top, width, height), the data ranges it maps onto
    it, and the SVG pieces drawn so far (data first, then the legend on the right)."""

    left: float
    top: float
    width: float
    height: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    parts: list[str] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (swatch kind, colour), text

    def px(self, x: float) -> float:
        lo, hi = self.xlim
        return self.left + (x - lo) / (hi - lo) * self.width

    def py(self, y: float) -> float:
        lo, hi = self.ylim
        return self.top + self.height - (y - lo) / (hi - lo) * self.height

    def frame(self, xlabel: str, ylabel: str, integer_x: bool = False,
              show_x: bool = True, show_y: bool = True) -> None:
        """Grid, frame, tick labels and axis titles; ``show_x`` False leaves the x tick labels
        and title to the panel below (shared x axis), ``show_y`` False draws no y grid (bars
        label their own rows)."""
        bottom, right = self.top + self.height, self.left + self.width
        out = [(f'<rect x="{_f(self.left)}" y="{_f(self.top)}" width="{_f(self.width)}" '
                f'height="{_f(self.height)}" fill="#fff" stroke="{AXIS}"/>')]
        for value in ticks(*self.xlim, integer=integer_x):
            x = self.px(value)
            out.append(f'<path d="M{_f(x)},{_f(self.top)}V{_f(bottom)}" stroke="{GRID}"/>')
            if show_x:
                out.append(_text(x, bottom + 15, label(value), "middle"))
        for value in ticks(*self.ylim) if show_y else []:
            y = self.py(value)
            out.append(f'<path d="M{_f(self.left)},{_f(y)}H{_f(right)}" stroke="{GRID}"/>')
            out.append(_text(self.left - 5, y + 4, label(value), "end"))
        if show_x and xlabel:
            out.append(_text(self.left + self.width / 2, bottom + 32, xlabel, "middle"))
        if ylabel:
            x, y = self.left - 52, self.top + self.height / 2
            out.append(f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="middle" font-size="11" '
                       f'fill="{TEXT}" transform="rotate(-90 {_f(x)} {_f(y)})">{_e(ylabel)}'
                       "</text>")
        self.parts[:0] = out  # under the data

    def points(self, xy: Sequence[tuple[float, float]], kind: str, colour: str, name: str,
               tips: Sequence[str] = ()) -> None:
        """Markers at data points, each with a hover tip (``tips``), and a legend entry."""
        for i, (x, y) in enumerate(xy):
            tip = f"<title>{_e(tips[i])}</title>" if i < len(tips) else ""
            self.parts.append(f"<g>{tip}{marker(kind, self.px(x), self.py(y), colour)}</g>")
        if xy and name:
            self.legend.append(((kind, colour), name))

    def hline(self, y: float, colour: str, name: str, dashed: bool = False) -> None:
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        self.parts.append(f'<path d="M{_f(self.left)},{_f(self.py(y))}H'
                          f'{_f(self.left + self.width)}" stroke="{colour}" stroke-width="1.3"'
                          f"{dash}/>")
        self.legend.append((("--" if dashed else "-", colour), name))

    def line(self, xy: Sequence[tuple[float, float]], colour: str) -> None:
        path = " ".join(f"{_f(self.px(x))},{_f(self.py(y))}" for x, y in xy)
        self.parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                          'stroke-width="1.5"/>')

    def note(self, x: float, y: float, text: str) -> None:
        """A small label just up and right of a data point."""
        self.parts.append(_text(self.px(x) + 7, self.py(y) - 7, text, "start"))

    def svg(self) -> str:
        return "".join(self.parts) + self._legend()

    def _legend(self) -> str:
        out, x = [], self.left + self.width + 14
        for row, ((kind, colour), text) in enumerate(self.legend):
            y = self.top + 12 + 17 * row
            if kind in ("-", "--"):
                dash = ' stroke-dasharray="6 4"' if kind == "--" else ""
                swatch = (f'<path d="M{_f(x)},{_f(y)}H{_f(x + 20)}" stroke="{colour}" '
                          f'stroke-width="1.3"{dash}/>')
            else:
                swatch = marker(kind, x + 10, y, colour)
            out.append(swatch + _text(x + 28, y + 4, text, "start"))
        return "".join(out)


def _text(x: float, y: float, text: str, anchor: str, size: int = 11) -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{TEXT}">{_e(text)}</text>')


def title(x: float, y: float, text: str) -> str:
    """A panel title, left-aligned at (x, y)."""
    return _text(x, y, text, "start", 13)


def bar(axes: Axes, row: int, rows: int, value: float, colour: str, name: str) -> str:
    """A horizontal bar for ``row`` of ``rows`` (top first), its label left of the panel and
    its value at its end."""
    pitch = axes.height / rows
    y, zero, end = axes.top + pitch * row, axes.px(0.0), axes.px(value)
    out = (f'<g><title>{_e(name)}: {_e(label(value))}</title><rect x="{_f(min(zero, end))}" '
           f'y="{_f(y + pitch * 0.15)}" width="{_f(abs(end - zero))}" '
           f'height="{_f(pitch * 0.7)}" fill="{colour}"/></g>')
    middle = y + pitch / 2 + 4
    return (out + _text(axes.left - 6, middle, name, "end") +
            _text(end + (4 if value >= 0 else -4), middle, format(value, ".4g"),
                  "start" if value >= 0 else "end", 10))


def document(width: float, height: float, body: str, alt: str) -> str:
    """The whole figure: an ``<svg>`` element sized to scale down with the page, with ``alt``
    as its accessible name."""
    return (f'<svg class="plot" role="img" '
            f'viewBox="0 0 {_f(width)} {_f(height)}" width="{_f(width)}" '
            f'height="{_f(height)}" {FONT}><title>{_e(alt)}</title>'
            f'<rect width="100%" height="100%" fill="#fff"/>{body}</svg>')


__all__ = ["CHAR_PX", "Axes", "bar", "document", "label", "marker", "span", "ticks", "title"]
