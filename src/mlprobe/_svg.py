"""Small inline SVG charts (no JavaScript, no external asset) for the status page and reports.

Two charts: paired bars (reference vs current share per bin) and lines (time series). Every
mark carries ``data-*`` attributes with the number it draws, so a browser test can check the
geometry against the data, and a ``<title>`` for a tooltip. All text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["bar_pairs", "line_chart", "PALETTE"]

REFERENCE_COLOUR = "#9aa5b1"
CURRENT_COLOUR = "#2f6fdf"
PALETTE = ("#2f6fdf", "#e8743b", "#19a979", "#945ecf", "#ed4a7b", "#13a4b4", "#6f7b8a")


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") or "0"


def bar_pairs(labels: Sequence[str], reference: Sequence[float], current: Sequence[float]
              | None, *, width: int = 260, height: int = 96, caption: str = "") -> str:
    """Reference (grey) and current (blue) share of each bin, side by side.

    Bar heights are ``share / max share * plot height`` (the same scale for both), so equal
    shares draw equal bars. ``current`` may be None (no data yet): only the reference is drawn.
    """
    n = max(len(labels), 1)
    top, bottom = 4, 16  # room for the bin labels
    plot = height - top - bottom
    shares = [*reference, *(current or [])]
    peak = max([s for s in shares if math.isfinite(s)] + [1e-12])
    slot = width / n
    bar = max(slot * 0.38, 1.0)
    parts = [f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} '
             f'{height}" role="img" aria-label="{escape(caption)}" data-peak="{peak!r}">']
    for i, label in enumerate(labels):
        x0 = i * slot + slot * 0.1
        for kind, values, colour, dx in (("ref", reference, REFERENCE_COLOUR, 0.0),
                                         ("cur", current, CURRENT_COLOUR, bar)):
            if values is None:
                continue
            share = values[i] if math.isfinite(values[i]) else 0.0
            h = share / peak * plot
            parts.append(
                f'<rect class="{kind}" x="{_num(x0 + dx)}" y="{_num(top + plot - h)}" '
                f'width="{_num(bar)}" height="{_num(h)}" fill="{colour}" '
                f'data-bin="{escape(label)}" data-share="{share!r}">'
                f'<title>{escape(label)}: {"reference" if kind == "ref" else "current"} '
                f'{share:.1%}</title></rect>')
        if n <= 12 or i % math.ceil(n / 12) == 0:
            text = label if len(label) <= 8 else label[:7] + "…"
            parts.append(f'<text x="{_num(x0 + bar)}" y="{height - 4}" font-size="9" '
                         f'text-anchor="middle" fill="#555">{escape(text)}</text>')
    parts.append(f'<line x1="0" x2="{width}" y1="{top + plot}" y2="{top + plot}" '
                 f'stroke="#ccc"/></svg>')
    return "".join(parts)


LEGEND_COLUMNS = 3
LEGEND_ROW = 11  # px per legend row (9 px text)
CHAR_WIDTH = 5.6  # px: a generous width of one 9 px sans-serif character, to fit labels


def _dashes(i: int) -> str:
    """A dash pattern for series past the palette, so no two lines look the same."""
    pattern = ("", "4 2", "1 2", "6 2 1 2")[(i // len(PALETTE)) % 4]
    return f' stroke-dasharray="{pattern}"' if pattern else ""


def _fit(text: str, width: float) -> str:
    """``text`` cut with an ellipsis to what fits in ``width`` pixels."""
    chars = max(int(width / CHAR_WIDTH), 4)
    return text if len(text) <= chars else text[:chars - 1] + "…"


def line_chart(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *,
               width: int = 520, height: int = 180, unit: str = "", title: str = "") -> str:
    """One line per ``(name, [(t, value), ...])``, on shared axes, with a legend.

    The y axis starts at 0 unless a value is negative; times are drawn left to right.
    ``height`` is the chart's height with a legend of up to two rows; the legend (three
    columns, names cut to their column with an ellipsis, the full name in a tooltip) grows the
    chart by one row per three further series, so no entry is ever cut off. Series past the
    palette's colours are dashed, in the legend too.
    """
    points = [(t, v) for _, pts in series for t, v in pts if math.isfinite(v)]
    rows = max(math.ceil(len(series) / LEGEND_COLUMNS), 1)
    left, right, top = 44, 8, 18
    pw, ph = width - left - right, height - top - 36  # 36: room for a two-row legend
    height = top + ph + 10 + rows * LEGEND_ROW  # first baseline 16 below the plot
    parts = [f'<svg class="lines" width="{width}" height="{height}" viewBox="0 0 {width} '
             f'{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="12" font-size="11" font-weight="600">{escape(title)}</text>']
    if not points:
        parts.append(f'<text x="{left}" y="{top + ph / 2}" font-size="11" fill="#888">no data'
                     '</text></svg>')
        return "".join(parts)
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    lo, hi = min(0.0, min(p[1] for p in points)), max(p[1] for p in points)
    hi = hi if hi > lo else lo + 1.0
    span = (t1 - t0) or 1.0

    def xy(t: float, v: float) -> tuple[float, float]:
        return left + (t - t0) / span * pw, top + ph - (v - lo) / (hi - lo) * ph

    for frac in (0.0, 0.5, 1.0):
        value = lo + frac * (hi - lo)
        y = top + ph - frac * ph
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{_num(y)}" y2="{_num(y)}" '
                     f'stroke="#eee"/><text x="{left - 4}" y="{_num(y + 3)}" font-size="9" '
                     f'text-anchor="end" fill="#555">{escape(_short(value) + unit)}</text>')
    column = pw / LEGEND_COLUMNS
    for i, (name, pts) in enumerate(series):
        colour, dashes = PALETTE[i % len(PALETTE)], _dashes(i)
        finite = [(t, v) for t, v in pts if math.isfinite(v)]
        if finite:
            path = " ".join(f"{_num(x)},{_num(y)}" for x, y in (xy(t, v) for t, v in finite))
            parts.append(f'<polyline class="series" fill="none" stroke="{colour}" '
                         f'stroke-width="1.5"{dashes} points="{path}" data-name="{escape(name)}" '
                         f'data-last="{finite[-1][1]!r}" data-points="{len(finite)}"/>')
        lx = left + (i % LEGEND_COLUMNS) * column
        ly = top + ph + 16 + (i // LEGEND_COLUMNS) * LEGEND_ROW
        parts.append(f'<line x1="{_num(lx)}" x2="{_num(lx + 12)}" y1="{ly - 3}" y2="{ly - 3}" '
                     f'stroke="{colour}" stroke-width="2.5"{dashes}/>'
                     f'<text class="legend" x="{_num(lx + 15)}" y="{ly}" font-size="9">'
                     f'<title>{escape(name)}</title>{escape(_fit(name, column - 18))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _short(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}"
