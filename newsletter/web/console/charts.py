"""Small inline SVG charts, drawn on the server (no JavaScript, no chart library).

Colours and sizes are fixed; text is escaped.  Each function returns markup
ready to be placed in a page (``Markup`` so Jinja does not escape it again).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from markupsafe import Markup

__all__ = ["bars", "lines"]

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 720, 240, 48, 36, 16, 16


def _nice_max(v: float) -> float:
    """A top for the axis: four equal steps of 1, 2, 2.5 or 5 × 10^k."""
    if v <= 0:
        return 4.0
    raw = v / 4
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return 4 * m * mag
    return 4 * 10 * mag  # pragma: no cover


def _frame(title: str, top: float, fmt: str, body: str) -> str:
    grid = []
    for i in range(5):
        y = PAD_T + (H - PAD_T - PAD_B) * i / 4
        val = top * (4 - i) / 4
        label = fmt.format(val) if fmt != "{:.0f}" or val == int(val) else f"{val:.1f}"
        grid.append(
            f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#e3e6ea"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#667">{html.escape(label)}</text>'
        )
    return (
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">'
        f"<title>{html.escape(title)}</title>{''.join(grid)}{body}</svg>"
    )


def _xlabels(labels: Sequence[str], xs: Sequence[float]) -> str:
    if not labels:
        return ""
    every = max(1, len(labels) // 8)
    out = []
    for i, (lab, x) in enumerate(zip(labels, xs, strict=True)):
        if i % every == 0 or i == len(labels) - 1:
            out.append(
                f'<text x="{x:.1f}" y="{H - PAD_B + 16}" text-anchor="middle" font-size="11" '
                f'fill="#667">{html.escape(lab)}</text>'
            )
    return "".join(out)


def bars(
    title: str, labels: Sequence[str], values: Sequence[int], color: str = "#2f6fde"
) -> Markup:
    """A bar chart (e.g. opens per hour)."""
    if not values:
        return Markup(
            _frame(
                title,
                1,
                "{:.0f}",
                f'<text x="{W / 2}" y="{H / 2}" '
                'text-anchor="middle" fill="#999" font-size="14">—</text>',
            )
        )
    top = _nice_max(max(values))
    span = (W - PAD_L - PAD_R) / len(values)
    bw = min(max(2.0, span * 0.7), 48.0)
    body, xs = [], []
    for i, v in enumerate(values):
        h = (H - PAD_T - PAD_B) * v / top
        x = PAD_L + span * i + (span - bw) / 2
        xs.append(x + bw / 2)
        body.append(
            f'<rect x="{x:.1f}" y="{H - PAD_B - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
            f'fill="{color}" rx="2"><title>{html.escape(labels[i])}: {v}</title></rect>'
        )
    return Markup(_frame(title, top, "{:.0f}", "".join(body) + _xlabels(labels, xs)))


def lines(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    percent: bool = True,
) -> Markup:
    """Line chart of one or more series (name, values, colour), e.g. open rate per issue."""
    n = len(labels)
    top_raw = max((max(v) for _n, v, _c in series if v), default=0.0)
    top = _nice_max(top_raw * 100) / 100 if percent else _nice_max(top_raw)
    if top <= 0:
        top = 1.0
    fmt = "{:.0%}" if percent else "{:.0f}"
    span = (W - PAD_L - PAD_R) / max(n - 1, 1)
    xs = [PAD_L + span * i if n > 1 else (W + PAD_L - PAD_R) / 2 for i in range(n)]
    body = []
    for k, (name, vals, color) in enumerate(series):
        pts = [(xs[i], H - PAD_B - (H - PAD_T - PAD_B) * v / top) for i, v in enumerate(vals)]
        if len(pts) > 1:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            body.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
        for (x, y), v, lab in zip(pts, vals, labels, strict=False):
            shown = f"{v:.1%}" if percent else f"{v:.0f}"
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
                f"<title>{html.escape(name)} {html.escape(lab)}: {shown}</title></circle>"
            )
        body.append(
            f'<rect x="{PAD_L + 8 + k * 130}" y="{PAD_T}" width="12" height="12" fill="{color}"/>'
            f'<text x="{PAD_L + 24 + k * 130}" y="{PAD_T + 11}" font-size="12" fill="#333">'
            f"{html.escape(name)}</text>"
        )
    return Markup(_frame(title, top, fmt, "".join(body) + _xlabels(labels, xs)))
