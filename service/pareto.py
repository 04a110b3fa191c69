"""Pareto front and hypervolume: pure numpy functions, no ORM, no HTTP.

As in Optuna, objectives to maximise are negated so everything is minimised, then a boolean
"on the front" mask is computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
import numpy.typing as npt

from service.vocabulary import Direction

__all__ = [
    "Direction",
    "hypervolume",
    "nondominated_mask",
    "to_minimisation",
]


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


def nondominated_mask(points: npt.ArrayLike, directions: Sequence[Direction]) -> np.ndarray:
    """Boolean mask of the points no other point dominates.

    ``a`` dominates ``b`` when ``a`` is at least as good in every objective and strictly
    better in one. Duplicates of a non-dominated point are all on the front.

    Computed by moocore (Kung et al.'s O(n log n) dimension sweep for 2 and 3 objectives).

    Args:
        points: (n, k) objective values, no NaN.
        directions: ``"maximize"`` or ``"minimize"`` per column.

    Returns:
        (n,) bool array.
    """
    v = to_minimisation(points, directions)
    if np.isnan(v).any():
        raise ValueError("points contain NaN")
    if len(v) == 0:
        return np.zeros(0, dtype=bool)
    # keep_weakly: every copy of a front point stays on it (moocore keeps only the first).
    return np.asarray(moocore.is_nondominated(v, keep_weakly=True), dtype=bool)


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
