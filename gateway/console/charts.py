"""Charts drawn on the server as inline SVG, for a campaign's page.

No script, no ``style`` attribute (the console's Content-Security-Policy forbids inline style
and script; SVG presentation attributes are neither). Each chart is ``role="img"`` with a
``<title>`` and a ``<desc>`` that a screen reader reads, and the page shows the same figures
in a table beside it. Every text put in is escaped (a keyword name comes from whoever wrote
the campaign).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup, escape

COLOURS: Final = {
    "sent": "#0b5cad",
    "delivered": "#1a7f37",
    "undelivered": "#b42318",
    "replies": "#8250df",
    "clicks": "#bc4c00",
    "opt_outs": "#59636e",
}
"""One colour per figure, the same in every chart (colour-blind safe enough with the legend
and the table: the lines also differ by their marker)."""
MARKERS: Final = ("circle", "square", "diamond", "triangle", "cross", "bar")


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    """As the API names the figure (``sent``, ``replies``...)."""
    label: str
    values: Sequence[int]


def _scale(peak: float) -> float:
    """The top of a scale: 1, 2 or 5 times a power of ten, at least 4."""
    if peak <= 4:
        return 4.0
    magnitude = 10 ** (len(str(int(peak))) - 1)
    for factor in (1, 2, 5, 10):
        if peak <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _marker(kind: str, x: float, y: float, colour: str) -> str:
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
    if kind == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{colour}"/>'
    if kind == "diamond":
        return (
            f'<path d="M{x:.1f} {y - 4:.1f}L{x + 4:.1f} {y:.1f}L{x:.1f} {y + 4:.1f}'
            f'L{x - 4:.1f} {y:.1f}Z" fill="{colour}"/>'
        )
    if kind == "triangle":
        return (
            f'<path d="M{x:.1f} {y - 4:.1f}L{x + 4:.1f} {y + 3:.1f}L{x - 4:.1f} {y + 3:.1f}Z"'
            f' fill="{colour}"/>'
        )
    if kind == "cross":
        return (
            f'<path d="M{x - 3:.1f} {y - 3:.1f}L{x + 3:.1f} {y + 3:.1f}M{x + 3:.1f} {y - 3:.1f}'
            f'L{x - 3:.1f} {y + 3:.1f}" stroke="{colour}" stroke-width="2"/>'
        )
    return f'<rect x="{x - 4:.1f}" y="{y - 1:.1f}" width="8" height="3" fill="{colour}"/>'


def line_chart(
    chart_id: str, title: str, desc: str, labels: Sequence[str], series: Sequence[Series]
) -> Markup:
    """Lines over ``labels`` (one point per label), a legend with each line's total."""
    width, height, left, right, top, bottom = 720, 260, 44, 30, 44, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(len(labels), 2)
    peak = max((max(s.values, default=0) for s in series), default=0)
    scale = _scale(peak)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" role="img" class="chart-svg"'
        f' aria-labelledby="{chart_id}-t {chart_id}-d" font-family="sans-serif" font-size="12">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for step in range(5):
        value = scale * step / 4
        y = top + plot_h - plot_h * step / 4
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"'
            ' stroke="#d0d7de" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#59636e">'
            f"{value:g}</text>"
        )
    every = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            x = left + plot_w * i / (count - 1)
            out.append(
                f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" fill="#59636e">'
                f"{escape(label)}</text>"
            )
    for index, s in enumerate(series):
        colour = COLOURS.get(s.name, "#1b1f24")
        marker = MARKERS[index % len(MARKERS)]
        points = [
            (left + plot_w * i / (count - 1), top + plot_h - plot_h * v / scale)
            for i, v in enumerate(s.values)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.extend(_marker(marker, x, y, colour) for x, y in points)
        lx, ly = left + (index % 4) * 165, 14 + (index // 4) * 16
        out.append(_marker(marker, lx + 6, ly - 4, colour))
        legend = f"{escape(s.label)} ({sum(s.values)})"
        out.append(f'<text x="{lx + 16}" y="{ly}" fill="#1b1f24">{legend}</text>')
    out.append("</svg>")
    return Markup("\n".join(out))


def bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    bars: Sequence[tuple[str, int]],
    colour: str,
    share: bool = False,
) -> Markup:
    """Horizontal bars, one per (label, value); the value at each bar's end and, with
    ``share``, what it is of the first bar (a funnel's steps against its audience)."""
    row, left, right, width = 30, 170, 120, 720
    height = max(1, len(bars)) * row + 16
    peak = max((v for _, v in bars), default=0) or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" role="img" class="chart-svg"'
        f' aria-labelledby="{chart_id}-t {chart_id}-d" font-family="sans-serif" font-size="13">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    first = bars[0][1] if bars else 0
    for i, (label, value) in enumerate(bars):
        y = 8 + i * row
        length = (width - left - right) * value / peak
        part = f" · {100 * value / first:.1f} %" if share and first and i else ""
        out.append(
            f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" fill="#1b1f24">'
            f"{escape(label)}</text>"
        )
        out.append(
            f'<rect x="{left}" y="{y + 3}" width="{max(length, 1):.1f}" height="{row - 10}"'
            f' fill="{colour}"/>'
        )
        out.append(
            f'<text x="{left + length + 6:.1f}" y="{y + 17}" fill="#1b1f24">'
            f"{value}{escape(part)}</text>"
        )
    if not bars:
        out.append(f'<text x="{left}" y="22" fill="#59636e">None yet.</text>')
    out.append("</svg>")
    return Markup("\n".join(out))
