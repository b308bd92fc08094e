"""Server-side SVG charts for the HTML report: a line (fidelity against queries) and a histogram."""

from __future__ import annotations

import html
import itertools
import math

from mlwarden.redteam.findings import ChartPoint

WIDTH, HEIGHT, PAD = 520, 240, 44


def _finite(points: list[ChartPoint], keys: tuple[str, str]) -> list[tuple[float, float]]:
    out = []
    for point in points:
        x, y = point.get(keys[0]), point.get(keys[1])
        if isinstance(x, int | float) and isinstance(y, int | float) and math.isfinite(x) and math.isfinite(y):
            out.append((float(x), float(y)))
    return out


def _scale(low: float, high: float, size: float, flip: bool = False) -> tuple[float, float]:
    """(factor, offset) mapping [low, high] onto [0, size] (upside down for y)."""
    span = (high - low) or 1.0
    return (-size / span, size + low * size / span) if flip else (size / span, -low * size / span)


def _frame(
    title: str, x_label: str, y_label: str, x_range: tuple[float, float], y_range: tuple[float, float]
) -> list[str]:
    w, h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(title)}">',  # noqa: E501
        f'<text x="{PAD}" y="16" font-size="13">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{PAD + h}" x2="{PAD + w}" y2="{PAD + h}" stroke="#555"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{PAD + h}" stroke="#555"/>',
        f'<text x="{PAD + w / 2}" y="{HEIGHT - 8}" font-size="11" text-anchor="middle">{html.escape(x_label)}</text>',
        f'<text x="12" y="{PAD + h / 2}" font-size="11" transform="rotate(-90 12 {PAD + h / 2})" text-anchor="middle">{html.escape(y_label)}</text>',  # noqa: E501
        f'<text x="{PAD}" y="{PAD + h + 14}" font-size="10">{x_range[0]:g}</text>',
        f'<text x="{PAD + w}" y="{PAD + h + 14}" font-size="10" text-anchor="end">{x_range[1]:g}</text>',
        f'<text x="{PAD - 4}" y="{PAD + h}" font-size="10" text-anchor="end">{y_range[0]:.3g}</text>',
        f'<text x="{PAD - 4}" y="{PAD + 8}" font-size="10" text-anchor="end">{y_range[1]:.3g}</text>',
    ]


def line_chart(title: str, points: list[ChartPoint], keys: tuple[str, str]) -> str:
    """A polyline of ``keys[1]`` against ``keys[0]`` with a marker per point; empty string without points."""
    data = sorted(_finite(points, keys))
    if not data:
        return ""
    xs, ys = [x for x, _ in data], [y for _, y in data]
    x_range, y_range = (min(xs), max(xs)), (min(0.0, min(ys)), max(1.0, max(ys)))
    fx, ox = _scale(*x_range, WIDTH - 2 * PAD)
    fy, oy = _scale(*y_range, HEIGHT - 2 * PAD, flip=True)
    coords = [(PAD + x * fx + ox, PAD + y * fy + oy) for x, y in data]
    parts = _frame(title, keys[0], keys[1], x_range, y_range)
    parts.append('<polyline fill="none" stroke="#3b6ea5" stroke-width="2" points="'
                 + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')  # fmt: skip
    parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#3b6ea5"/>' for x, y in coords]
    return "".join([*parts, "</svg>"])


def histogram(title: str, points: list[ChartPoint], keys: tuple[str, str] = ("bin", "count")) -> str:
    """One bar per point (``bin`` is its left edge); empty string without points."""
    data = sorted(_finite(points, keys))
    if not data:
        return ""
    xs, counts = [x for x, _ in data], [c for _, c in data]
    step = min((b - a for a, b in itertools.pairwise(xs) if b > a), default=1.0)
    x_range, y_range = (min(xs), max(xs) + step), (0.0, max(max(counts), 1.0))
    fx, ox = _scale(*x_range, WIDTH - 2 * PAD)
    fy, oy = _scale(*y_range, HEIGHT - 2 * PAD, flip=True)
    parts = _frame(title, "perturbation (share of feature range)" if keys[0] == "bin" else keys[0], keys[1],
                   x_range, y_range)  # fmt: skip
    for x, count in data:
        left, top = PAD + x * fx + ox, PAD + count * fy + oy
        parts.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{max(1.0, step * fx - 1):.1f}" '
                     f'height="{PAD + oy - top:.1f}" fill="#3b6ea5"/>')  # fmt: skip
    return "".join([*parts, "</svg>"])
