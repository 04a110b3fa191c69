"""Pareto front and hypervolume: pure numpy functions, no ORM, no HTTP.

As in Optuna, objectives to maximise are negated so everything is minimised, then a boolean
"on the front" mask is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import moocore
import numpy as np
import numpy.typing as npt

__all__ = [
    "Direction",
    "front_mask",
    "hypervolume",
    "nondominated_mask",
    "to_minimisation",
]

Direction = Literal["maximize", "minimize"]


def to_minimisation(points: npt.ArrayLike, directions: Sequence[Direction]) -> np.ndarray:
    """Return a float (n, k) copy of ``points`` with maximised columns negated."""
    values = np.asarray(points, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(directions):
        raise ValueError(f"points must be (n, {len(directions)}), got {values.shape}")
    for d in directions:
        if d not in ("maximize", "minimize"):
            raise ValueError(f"unknown direction {d!r}")
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return values * sign


def _front_of_unique_lexsorted(v: np.ndarray) -> np.ndarray:
    """Mask of the non-dominated rows of unique, lexicographically ascending rows ``v``."""
    n, k = v.shape
    on_front = np.zeros(n, dtype=bool)
    if n == 0:
        return on_front
    if k == 1:
        on_front[0] = True
        return on_front
    if k == 2:
        # Every earlier row has a first value <= this one (equal only with a smaller second
        # value), so a row is dominated iff some earlier row has a second value <= its own.
        best_before = np.minimum.accumulate(v[:, 1])
        on_front[0] = True
        on_front[1:] = v[1:, 1] < best_before[:-1]
        return on_front
    # The first remaining row in lexicographic order is never dominated by a remaining row;
    # it goes on the front and takes every row it weakly dominates out (itself included).
    # Later rows are lexicographically larger, so column 0 never decides: a row survives iff
    # it is strictly better than the head in some other column (as Optuna does).
    rest = v[:, 1:]
    remaining = np.arange(n)
    while remaining.size:
        head = remaining[0]
        on_front[head] = True
        remaining = remaining[np.any(rest[remaining] < rest[head], axis=1)]
    return on_front


def nondominated_mask(points: npt.ArrayLike, directions: Sequence[Direction]) -> np.ndarray:
    """Boolean mask of the points no other point dominates.

    ``a`` dominates ``b`` when ``a`` is at least as good in every objective and strictly
    better in one. Duplicates of a non-dominated point are all on the front.

    Args:
        points: (n, k) objective values, no NaN.
        directions: ``"maximize"`` or ``"minimize"`` per column.

    Returns:
        (n,) bool array.
    """
    v = to_minimisation(points, directions)
    if np.isnan(v).any():
        raise ValueError("points contain NaN")
    on_front = np.zeros(len(v), dtype=bool)
    if len(v) == 0:
        return on_front
    # Cheap pre-pass on large inputs: drop the points that a few known front points dominate.
    candidates = _not_dominated_by_pivots(v) if len(v) > 256 else np.arange(len(v))
    c = v[candidates]
    # Lexsort + run-length dedupe: the same result as np.unique(axis=0), several times faster.
    order = np.lexsort(c.T[::-1])
    ordered = c[order]
    first_of_run = np.ones(len(c), dtype=bool)
    first_of_run[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    run = np.cumsum(first_of_run) - 1
    on_front[candidates[order]] = _front_of_unique_lexsorted(ordered[first_of_run])[run]
    return on_front


def _not_dominated_by_pivots(v: np.ndarray, n_weights: int = 8) -> np.ndarray:
    """Indices of the rows that no pivot dominates (a superset of the front).

    Any row a pivot dominates is off the front, and any survivor dominated by a dropped
    row is dominated by that row's pivot too (transitivity), hence also dropped: the exact
    pass over the survivors gives the exact front. Pivots that minimise positively weighted
    sums of the range-scaled objectives dominate much, so few rows survive.
    """
    lo, hi = v.min(axis=0), v.max(axis=0)
    scaled = (v - lo) / np.where(hi > lo, hi - lo, 1.0)
    # Fixed positive weights: the axes' near-corners and the diagonal.
    k = v.shape[1]
    weights = np.vstack([np.full((1, k), 1.0 / k), 0.05 + 0.9 * np.eye(k)])[:n_weights]
    pivots = np.unique(np.argmin(scaled @ weights.T, axis=0))
    keep = np.ones(len(v), dtype=bool)
    for p in pivots:
        keep &= ~(np.all(v >= v[p], axis=1) & np.any(v > v[p], axis=1))
    return np.flatnonzero(keep)


def front_mask(
    points: npt.ArrayLike,
    directions: Sequence[Direction],
    *,
    lower: Sequence[float | None] | None = None,
    upper: Sequence[float | None] | None = None,
) -> np.ndarray:
    """Mask of the feasible points that no other feasible point dominates.

    Args:
        points: (n, k) objective values, no NaN.
        directions: per column.
        lower / upper: optional inclusive bounds per column (None: unbounded), e.g. a FLOPs
            budget; points outside them are neither on the front nor dominate anything.
    """
    values = np.asarray(points, dtype=float).reshape(-1, len(directions))
    feasible = np.ones(values.shape[0], dtype=bool)
    for bounds, keep in ((lower, np.greater_equal), (upper, np.less_equal)):
        if bounds is None:
            continue
        if len(bounds) != len(directions):
            raise ValueError("one bound per objective")
        for j, bound in enumerate(bounds):
            if bound is not None:
                feasible &= keep(values[:, j], bound)
    mask = np.zeros(values.shape[0], dtype=bool)
    mask[feasible] = nondominated_mask(values[feasible], directions)
    return mask


def hypervolume(points: npt.ArrayLike, reference: Sequence[float]) -> float:
    """Hypervolume dominated by minimisation ``points`` and bounded by ``reference``.

    Points that do not strictly dominate the reference contribute nothing and are dropped.
    Computed by moocore (exact, any dimension).
    """
    v = np.asarray(points, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if v.size == 0:
        return 0.0
    if v.ndim != 2 or v.shape[1] != ref.shape[0]:
        raise ValueError(f"points must be (n, {ref.shape[0]}), got {v.shape}")
    v = v[np.all(v < ref, axis=1)]
    if v.shape[0] == 0:
        return 0.0
    return float(moocore.hypervolume(v, ref=ref))
