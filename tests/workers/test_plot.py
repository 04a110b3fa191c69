"""The sweep plot: a well-formed SVG with one mark per completed trial, the front in red."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from workers.plot import _nice_ticks, front_svg

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
    frame = next(root.iter(f"{SVG}rect"))  # background
    assert frame.get("width") == "840"
    for c in root.iter(f"{SVG}circle"):
        assert 0 < float(c.get("cx", "-1")) < 840 and 0 < float(c.get("cy", "-1")) < 320


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
    from workers.plot import _log_ticks

    assert _log_ticks(1.87, 14.69) == [1.0, 2.0, 5.0, 10.0, 20.0]
    assert _log_ticks(2.0, 2.0) == [2.0]
