"""The accuracy–sparsity–FLOPs trade-off of a sweep as a self-contained SVG (no plotting
library): test error (log axis) against sparsity and against FLOPs, every completed trial a dot, the
Pareto front's trials in red and labelled with their λ."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["front_svg"]

_PANEL_W, _PANEL_H = 420, 320
_MARGIN = {"left": 64, "right": 16, "top": 40, "bottom": 52}
_FRONT, _OTHER = "#d62728", "#9a9a9a"


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= mult * step:
            step *= mult
            break
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks covering [lo, hi] (both > 0) for a log axis."""
    ticks: list[float] = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        ticks += [m * 10.0**k for m in (1, 2, 5)]
    below = [t for t in ticks if t <= lo * (1 + 1e-9)]
    above = [t for t in ticks if t >= hi * (1 - 1e-9)]
    first, last = below[-1], above[0]
    return [t for t in ticks if first <= t <= last]


def _label_positions(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which of the (screen x, y) points get a label without overlapping an earlier one."""
    placed: list[tuple[float, float]] = []
    keep = []
    for x, y in points:
        free = all(abs(x - px) > 34 or abs(y - py) > 12 for px, py in placed)
        keep.append(free)
        if free:
            placed.append((x, y))
    return keep


def _panel(
    points: Sequence[tuple[float, float, bool, str]],
    *,
    x_label: str,
    y_label: str,
    x_offset: int,
) -> list[str]:
    """One scatter panel; ``points`` are (x, y, on_front, label)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x_ticks = _nice_ticks(min(xs), max(xs))
    # Test error spans decades (1 % next to 15 %): a log axis keeps the good models apart.
    y_ticks = _log_ticks(max(min(ys), 1e-3), max(max(ys), 1e-3))
    x0, x1 = x_ticks[0], x_ticks[-1]
    y0, y1 = math.log10(y_ticks[0]), math.log10(y_ticks[-1])
    left, top = x_offset + _MARGIN["left"], _MARGIN["top"]
    width = _PANEL_W - _MARGIN["left"] - _MARGIN["right"]
    height = _PANEL_H - _MARGIN["top"] - _MARGIN["bottom"]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * width

    def sy(y: float) -> float:
        return top + height - (math.log10(max(y, 1e-3)) - y0) / ((y1 - y0) or 1.0) * height

    out = [
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#333"/>'
    ]
    for t in x_ticks:
        out.append(
            f'<line x1="{sx(t):.1f}" y1="{top + height}" x2="{sx(t):.1f}" '
            f'y2="{top + height + 4}" stroke="#333"/>'
            f'<text x="{sx(t):.1f}" y="{top + height + 18}" text-anchor="middle">{t:g}</text>'
        )
    for t in y_ticks:
        out.append(
            f'<line x1="{left - 4}" y1="{sy(t):.1f}" x2="{left}" y2="{sy(t):.1f}" '
            f'stroke="#333"/><text x="{left - 7}" y="{sy(t) + 4:.1f}" '
            f'text-anchor="end">{t:g}</text>'
        )
    out.append(
        f'<text x="{left + width / 2:.1f}" y="{top + height + 40}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text transform="translate({x_offset + 16},{top + height / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    # Dominated trials first, so the front is drawn on top; labels only where they fit.
    ordered = sorted(points, key=lambda p: (p[2], p[0]))
    labelled = _label_positions([(sx(p[0]), sy(p[1])) if p[2] else (-1e9, -1e9) for p in ordered])
    for (x, y, on_front, label), has_label in zip(ordered, labelled, strict=True):
        color = _FRONT if on_front else _OTHER
        out.append(
            f'<circle class="{"front" if on_front else "trial"}" cx="{sx(x):.1f}" '
            f'cy="{sy(y):.1f}" r="{4 if on_front else 3}" fill="{color}">'
            f"<title>{escape(label)}</title></circle>"
        )
        if on_front and has_label:
            out.append(
                f'<text x="{sx(x) + 6:.1f}" y="{sy(y) - 5:.1f}" fill="{_FRONT}" '
                f'font-size="10">{escape(label)}</text>'
            )
    return out


def front_svg(
    trials: Sequence[Mapping[str, Any]],
    front_ids: set[Any] | frozenset[Any],
    *,
    title: str = "",
) -> str:
    """An SVG of test error vs sparsity and vs FLOPs for a sweep's completed trials.

    Args:
        trials: Trials as the REST API returns them (``id``, ``lambda``, ``metrics``).
        front_ids: Ids of the trials on the Pareto front (drawn red, labelled with λ).
        title: Heading drawn above the panels.

    Raises:
        ValueError: When no trial has completed (there is nothing to plot).
    """
    done = [t for t in trials if t.get("metrics")]
    if not done:
        raise ValueError("no completed trial to plot yet")
    by_sparsity, by_flops = [], []
    for t in done:
        m = t["metrics"]
        on_front = t["id"] in front_ids
        label = f"λ={t['lambda']:g}"
        error = 100.0 * float(m["error"])
        by_sparsity.append((100.0 * float(m["sparsity"]), error, on_front, label))
        flops_pct = 100.0 * float(m["flops"]) / max(float(m["flops_dense"]), 1.0)
        by_flops.append((flops_pct, error, on_front, label))
    width = 2 * _PANEL_W
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_PANEL_H}" '
        f'viewBox="0 0 {width} {_PANEL_H}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{_PANEL_H}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">'
        f"{escape(title)} ({len(done)} trials, {len(front_ids)} on the front)</text>",
    ]
    parts += _panel(by_sparsity, x_label="sparsity (%)", y_label="test error (%, log)", x_offset=0)
    parts += _panel(
        by_flops, x_label="FLOPs (% of dense)", y_label="test error (%, log)", x_offset=_PANEL_W
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
