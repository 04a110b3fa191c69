"""The sweep plot: a well-formed SVG with one mark per completed trial, the front in red."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from workers.cli.plot import _nice_ticks, front_svg

SVG = "{http://www.w3.org/2000/svg}"


def _trial(tid: int, lam: float, error: float | None, sparsity: float, flops: int) -> dict:
    metrics: dict[str, Any] | None = None
    if error is not None:
        metrics = {"error": error, "sparsity": sparsity, "flops": flops, "flops_dense": 1000}
    return {"id": tid, "lambda": lam, "metrics": metrics}


def test_svg_has_a_mark_per_completed_trial_and_the_front_in_red() -> None:
    trials = [
        _trial(1, 0.01, 0.02, 0.30, 700),
        _trial(2, 0.1, 0.03, 0.60, 400),
        _trial(3, 1.0, 0.05, 0.50, 500),  # dominated by trial 2
        _trial(4, 3.0, None, 0.0, 0),  # still running: not drawn
    ]
    svg = front_svg(trials, {1, 2}, title="mnist-mlp")
    root = ET.fromstring(svg)  # well-formed XML
    circles = root.iter(f"{SVG}circle")
    classes = sorted(c.get("class", "") for c in circles)
    # Two panels, three completed trials each; two of them on the front.
    assert classes == ["front"] * 4 + ["trial"] * 2
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "mnist-mlp (3 trials, 2 on the front)" in texts
    assert "λ=0.1" in texts and "λ=1" not in texts  # only front trials are labelled
    assert "sparsity (%)" in texts and "FLOPs (% of dense)" in texts


def test_points_land_inside_their_panel() -> None:
    trials = [_trial(i, 0.1 * i, 0.01 * i, 0.1 * i, 100 * i) for i in range(1, 6)]
    root = ET.fromstring(front_svg(trials, {1}))
    # Each panel is its axes frame (an unfilled rect) followed by its marks, in document order.
    panels: list[tuple[dict[str, float], list[ET.Element]]] = []
    for el in root:
        if el.tag == f"{SVG}rect" and el.get("fill") == "none":
            box = {k: float(el.get(k, "nan")) for k in ("x", "y", "width", "height")}
            panels.append((box, []))
        elif el.tag == f"{SVG}circle":
            assert panels, "a mark before any panel frame"
            panels[-1][1].append(el)
    assert len(panels) == 2
    assert [len(circles) for _, circles in panels] == [5, 5]
    (left, _), (right, _) = panels
    assert left["x"] + left["width"] <= right["x"]  # the panels do not overlap
    for box, circles in panels:
        for c in circles:
            cx, cy = float(c.get("cx", "nan")), float(c.get("cy", "nan"))
            assert box["x"] <= cx <= box["x"] + box["width"], (cx, box)
            assert box["y"] <= cy <= box["y"] + box["height"], (cy, box)
    # Larger sparsity and larger error: further right and higher up (smaller y), per panel.
    for _, circles in panels:
        by_x = sorted(circles, key=lambda c: float(c.get("cx", "nan")))
        ys = [float(c.get("cy", "nan")) for c in by_x]
        assert ys == sorted(ys, reverse=True)


def test_nothing_completed_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no completed trial"):
        front_svg([_trial(1, 0.1, None, 0, 0)], set())


def test_ticks_cover_the_range_with_round_steps() -> None:
    ticks = _nice_ticks(1.3, 4.7)
    assert ticks[0] <= 1.3 and ticks[-1] >= 4.7
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and steps.pop() in (0.5, 1.0)
    assert _nice_ticks(2.0, 2.0)  # a single value still gets an axis


def test_error_axis_is_logarithmic_and_covers_the_errors() -> None:
    from workers.cli.plot import _log_ticks

    assert _log_ticks(1.87, 14.69) == [1.0, 2.0, 5.0, 10.0, 20.0]
    assert _log_ticks(2.0, 2.0) == [2.0]
