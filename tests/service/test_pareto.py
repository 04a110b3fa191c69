from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.pareto import hypervolume, nondominated_mask


def brute_force_front(points: np.ndarray, directions: list[str]) -> np.ndarray:
    """O(n²): a point is on the front iff no other point dominates it."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    v = points * sign
    n = len(v)
    out = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if np.all(v[j] <= v[i]) and np.any(v[j] < v[i]):
                out[i] = False
                break
    return out


# Small integer grids force many ties and exact duplicates.
@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, list[str]]:
    k = draw(st.sampled_from([2, 3]))
    n = draw(st.integers(0, 40))
    values = st.one_of(st.integers(0, 4).map(float), st.floats(-1e6, 1e6, allow_nan=False))
    rows = draw(st.lists(st.lists(values, min_size=k, max_size=k), min_size=n, max_size=n))
    if rows and draw(st.booleans()):
        rows += draw(st.lists(st.sampled_from(rows), max_size=10))  # exact duplicates
    directions = draw(st.lists(st.sampled_from(["maximize", "minimize"]), min_size=k, max_size=k))
    return np.array(rows, dtype=float).reshape(len(rows), k), directions


@settings(max_examples=300, deadline=None)
@given(problems())
def test_front_equals_brute_force(problem: tuple[np.ndarray, list[str]]) -> None:
    points, directions = problem
    np.testing.assert_array_equal(
        nondominated_mask(points, directions), brute_force_front(points, directions)
    )


def dominated_rowwise(points: np.ndarray, directions: list[str]) -> np.ndarray:
    """Still the O(n²) definition, one row at a time (fast enough for n in the hundreds)."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    v = points * sign
    return np.array(
        [not np.any(np.all(v <= row, axis=1) & np.any(v < row, axis=1)) for row in v],
        dtype=bool,
    )


# Hundreds of points; small integer ranges force many ties and duplicates.
@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 3).flatmap(
        lambda k: st.tuples(
            st.lists(
                st.lists(st.integers(0, 12), min_size=k, max_size=k), min_size=257, max_size=600
            ),
            st.lists(st.sampled_from(["maximize", "minimize"]), min_size=k, max_size=k),
        )
    )
)
def test_large_front_equals_brute_force(problem: tuple[list[list[int]], list[str]]) -> None:
    rows, directions = problem
    points = np.array(rows, dtype=float)
    np.testing.assert_array_equal(
        nondominated_mask(points, directions), dominated_rowwise(points, directions)
    )


def test_duplicates_all_on_front_and_directions_matter() -> None:
    pts = np.array([[0.9, 0.5], [0.9, 0.5], [0.8, 0.6], [0.8, 0.4]])
    assert nondominated_mask(pts, ["maximize", "maximize"]).tolist() == [
        True,
        True,
        True,
        False,
    ]
    assert nondominated_mask(pts, ["minimize", "minimize"]).tolist() == [
        False,
        False,
        False,
        True,
    ]


def test_rejects_nan_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="NaN"):
        nondominated_mask([[np.nan, 1.0]], ["minimize", "minimize"])
    with pytest.raises(ValueError):
        nondominated_mask([[1.0, 2.0, 3.0]], ["minimize", "minimize"])
    with pytest.raises(ValueError):
        nondominated_mask([[1.0, 2.0]], ["up", "minimize"])  # type: ignore[list-item]


def test_hypervolume_of_hand_made_2d_front() -> None:
    # Staircase vs reference (1, 1): strips [0.1, 0.4)×[0.7, 1], [0.4, 0.6)×[0.3, 1],
    # [0.6, 1]×[0.2, 1]  ->  0.3·0.3 + 0.2·0.7 + 0.4·0.8 = 0.09 + 0.14 + 0.32 = 0.55
    front = [[0.1, 0.7], [0.4, 0.3], [0.6, 0.2]]
    assert hypervolume(front, [1.0, 1.0]) == pytest.approx(0.55)
    # A dominated point and a point outside the reference box change nothing.
    assert hypervolume([*front, [0.5, 0.5], [1.2, 0.0]], [1.0, 1.0]) == pytest.approx(0.55)
    assert hypervolume([], [1.0, 1.0]) == 0.0
    assert hypervolume([[1.0, 0.0]], [1.0, 1.0]) == 0.0


def test_hypervolume_3d_matches_inclusion_exclusion() -> None:
    a, b = np.array([0.2, 0.5, 0.4]), np.array([0.5, 0.2, 0.6])
    vol = lambda p: float(np.prod(1.0 - p))  # noqa: E731
    expected = vol(a) + vol(b) - vol(np.maximum(a, b))
    assert hypervolume([a, b], [1.0, 1.0, 1.0]) == pytest.approx(expected)


def test_front_scales_to_10k_points() -> None:
    rng = np.random.default_rng(0)
    pts = rng.random((10_000, 3))
    mask = nondominated_mask(pts, ["maximize", "maximize", "minimize"])
    sample = rng.choice(10_000, 200, replace=False)
    # Spot-check against brute force on a subset's membership: a point is on the front
    # iff none of the 10k points dominates it.
    v = pts * np.array([-1.0, -1.0, 1.0])
    for i in sample:
        dominated = np.any(np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1))
        assert mask[i] == (not dominated)
    assert list(itertools.islice(np.flatnonzero(mask), 1))  # non-empty
