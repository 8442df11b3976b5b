"""Learning curves as a small self-contained SVG (no plotting library needed to train)."""

from __future__ import annotations

from pathlib import Path

from nvcodec.outputs import write_file

WIDTH, HEIGHT, MARGIN = 640, 360, 56
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")

Series = dict[str, list[tuple[float, float]]]


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (count - 1) for i in range(count)]


def _bounds(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


def render_svg(series: Series, title: str, x_label: str, y_label: str) -> str:
    """One polyline per named series of (x, y) points, with axes, ticks and a legend."""
    points = [p for line in series.values() for p in line]
    if not points:
        raise ValueError("no points to plot")
    (x0, x1), (y0, y1) = _bounds([p[0] for p in points]), _bounds([p[1] for p in points])
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def sx(x: float) -> float:
        return MARGIN + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return HEIGHT - MARGIN - (y - y0) / (y1 - y0) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="13">{title}</text>',
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 12}" text-anchor="middle">{x_label}</text>',
        f'<text x="14" y="{HEIGHT / 2}" text-anchor="middle" transform="rotate(-90 14 {HEIGHT / 2})">{y_label}</text>',
    ]
    for x in _ticks(x0, x1):
        parts.append(f'<text x="{sx(x):.1f}" y="{HEIGHT - MARGIN + 14}" text-anchor="middle">{x:.3g}</text>')
    for y in _ticks(y0, y1):
        parts.append(f'<text x="{MARGIN - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
        parts.append(
            f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#ddd"/>'
        )
    for i, (name, line) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts.append(f'<text x="{MARGIN + 8}" y="{MARGIN + 14 + 14 * i}" fill="{colour}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_svg(path: Path, series: Series, title: str, x_label: str, y_label: str) -> None:
    write_file(path, render_svg(series, title, x_label, y_label))
