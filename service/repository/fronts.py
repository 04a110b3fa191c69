"""The Pareto read path: a sweep's front and hypervolume, and the cache of computed fronts."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import pareto
from service.models import Trial
from service.repository.sweeps import get_sweep
from service.vocabulary import (
    DEFAULT_OBJECTIVES,
    OBJECTIVE_DIRECTIONS,
    RESULT_TRIAL_STATUSES,
    Direction,
    Objective,
)

__all__ = [
    "OBJECTIVES",
    "FrontCache",
    "HypervolumePoint",
    "ParetoFront",
    "hypervolume_history",
    "pareto_front",
]

#: Objective -> direction (DESIGN.md §5); the name the repository has always exported.
OBJECTIVES = OBJECTIVE_DIRECTIONS
#: The statuses of the trials a front is taken over: completed and early-stopped ones.
_WITH_RESULT = sorted(RESULT_TRIAL_STATUSES)


#: Front trial ids (best first) and the hypervolume: what the cache keeps per front.
ComputedFront = tuple[tuple[int, ...], float]


class FrontCache:
    """Computed fronts, least recently used out first; safe to share between threads.

    Whoever serves fronts owns one (the API app creates its own) and hands it to
    :func:`pareto_front`. Entries are keyed by the sweep's ``results_version``, so a new or
    re-recorded result is seen on the next read, never a stale front.

    Args:
        maxsize: How many fronts to keep; 0 keeps none (every read computes its front).
    """

    def __init__(self, maxsize: int = 256) -> None:
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0")
        self._fronts: LRUCache[tuple[Any, ...], ComputedFront] = LRUCache(maxsize)
        self._lock = threading.Lock()

    @property
    def maxsize(self) -> int:
        return int(self._fronts.maxsize)

    def __len__(self) -> int:
        with self._lock:
            return len(self._fronts)

    def get(self, key: tuple[Any, ...]) -> ComputedFront | None:
        with self._lock:
            return self._fronts.get(key)

    def put(self, key: tuple[Any, ...], front: ComputedFront) -> None:
        if self.maxsize == 0:
            return
        with self._lock:
            self._fronts[key] = front


@dataclass(frozen=True)
class ParetoFront:
    """The front of a sweep (DESIGN.md §5 shape; ``items`` are ORM trials, best first)."""

    objectives: list[Objective]
    directions: list[Direction]
    items: list[Trial]
    hypervolume: float


def pareto_front(
    session: Session,
    sweep_id: int,
    objectives: Sequence[str] = DEFAULT_OBJECTIVES,
    constraints: Mapping[str, float] | None = None,
    *,
    cache: FrontCache | None = None,
) -> ParetoFront:
    """The non-dominated trials with a result (``completed`` or ``stopped``) of a sweep
    and the front's hypervolume.

    Args:
        objectives: 2 or 3 distinct names of :data:`OBJECTIVES`.
        constraints: ``{"max_flops": x, "min_accuracy": y, ...}``: ``max_<objective>`` /
            ``min_<objective>`` bounds (inclusive); trials outside them are left out before
            the front is taken.
        cache: Where computed fronts are kept and looked up; None computes every time.

    The hypervolume uses minimised fractions in [0, 1] (error, 1 − sparsity,
    flops / flops_dense, params / params_dense) against the reference point (1, …, 1).
    """
    chosen = _objectives(objectives)
    bounds = _parse_constraints(constraints or {})
    sweep = get_sweep(session, sweep_id)
    directions = [o.direction for o in chosen]

    if cache is None:
        front_ids, volume = _compute_front(session, sweep_id, chosen, directions, bounds)
    else:
        # The set with results only changes through record_trial_result, which bumps
        # results_version in the same transaction: a cached front for the version read here
        # is never older than the data (a result committed after this read bumps it).
        key = (
            session.connection().engine.url.render_as_string(hide_password=True),
            sweep_id,
            sweep.created_at,  # a database recreated at the same URL reuses ids, not times
            tuple(chosen),
            tuple(sorted(bounds.items())),
            sweep.results_version,
        )
        cached = cache.get(key)
        if cached is None:
            cached = _compute_front(session, sweep_id, chosen, directions, bounds)
            cache.put(key, cached)
        front_ids, volume = cached
    trials = {t.id: t for t in session.scalars(select(Trial).where(Trial.id.in_(front_ids)))}
    items = [trials[i] for i in front_ids if i in trials]
    return ParetoFront(chosen, directions, items, volume)


@dataclass(frozen=True)
class HypervolumePoint:
    """The front's hypervolume once the first ``completed`` trials with a result (completed
    or stopped, by finish time) were in."""

    completed: int
    finished_at: datetime | None
    hypervolume: float


def hypervolume_history(
    session: Session,
    sweep_id: int,
    objectives: Sequence[str] = DEFAULT_OBJECTIVES,
    constraints: Mapping[str, float] | None = None,
    *,
    max_points: int = 200,
) -> list[HypervolumePoint]:
    """How the front's hypervolume grew as the sweep's trials completed.

    Trials are taken in the order they finished; the last point is the hypervolume
    :func:`pareto_front` reports for the same objectives and constraints. ``completed``
    counts every trial with a result (completed or stopped), also those the constraints
    leave out.

    Args:
        objectives, constraints: As for :func:`pareto_front`.
        max_points: At most this many points, evenly spaced in completed trials (the last
            trial always included).
    """
    if max_points < 1:
        raise ValueError("max_points must be >= 1")
    chosen = _objectives(objectives)
    bounds = _parse_constraints(constraints or {})
    get_sweep(session, sweep_id)
    directions = [o.direction for o in chosen]
    dense = {"flops": "flops_dense", "params": "params_dense"}
    needed = list(dict.fromkeys([*chosen, *(dense[o] for o in chosen if o in dense)]))
    needed += [name for name in bounds if name not in needed]

    table = Trial.__table__
    found = session.execute(
        select(table.c.id, table.c.finished_at, *(table.c[name] for name in needed)).where(
            table.c.sweep_id == sweep_id, table.c.status.in_(_WITH_RESULT)
        )
    ).all()
    if not found:
        return []
    # In finishing order; a trial without a finish time (none should lack one) goes last.
    rows = sorted(found, key=lambda r: (r[1] is None, r[1].timestamp() if r[1] else 0.0, r[0]))
    values = np.array(
        [[math.nan if v is None else v for v in row[2:]] for row in rows], dtype=float
    ).reshape(len(rows), len(needed))
    col = {name: values[:, i] for i, name in enumerate(needed)}
    points = np.column_stack([col[o] for o in chosen])
    keep = ~np.isnan(points).any(axis=1)
    for name, (lo, hi) in bounds.items():
        if lo is not None:
            keep &= col[name] >= lo
        if hi is not None:
            keep &= col[name] <= hi
    fractions = np.clip(np.column_stack([_fraction(col, o) for o in chosen]), 0.0, 1.0)
    reference = [1.0] * len(chosen)

    n = len(rows)
    ends = np.unique(np.linspace(1, n, min(n, max_points)).round().astype(int))
    history: list[HypervolumePoint] = []
    front = np.zeros(0, dtype=int)  # indices of the front so far
    start = 0
    volume = 0.0
    for end in ends:
        arrived = np.flatnonzero(keep[start:end]) + start
        start = int(end)
        if len(arrived):
            # The front of all points so far is the front of the old front and the new ones.
            candidates = np.concatenate([front, arrived])
            front = candidates[pareto.nondominated_mask(points[candidates], directions)]
            volume = pareto.hypervolume(fractions[front], reference)
        history.append(HypervolumePoint(int(end), rows[end - 1][1], volume))
    return history


def _objectives(objectives: Sequence[str]) -> list[Objective]:
    names = list(objectives)
    if not 2 <= len(names) <= 3 or len(set(names)) != len(names):
        raise ValueError("choose 2 or 3 distinct objectives")
    unknown = [o for o in names if o not in OBJECTIVE_DIRECTIONS]
    if unknown:
        raise ValueError(f"unknown objective(s) {', '.join(unknown)}")
    return [Objective(o) for o in names]


def _compute_front(
    session: Session,
    sweep_id: int,
    objectives: list[Objective],
    directions: list[Direction],
    bounds: dict[str, tuple[float | None, float | None]],
) -> ComputedFront:
    """Front trial ids (best first on the first objective) and the hypervolume."""
    # Only the columns this front needs: its objectives, their dense sizes (for the
    # hypervolume fractions) and the constrained measures.
    dense = {"flops": "flops_dense", "params": "params_dense"}
    needed = list(dict.fromkeys([*objectives, *(dense[o] for o in objectives if o in dense)]))
    needed += [name for name in bounds if name not in needed]
    data = _read_completed(session, sweep_id, needed)
    if len(data) == 0:
        return (), 0.0
    ids = data[:, 0].astype(np.int64)
    col = {name: data[:, i + 1] for i, name in enumerate(needed)}
    points = np.column_stack([col[o] for o in objectives])
    keep = ~np.isnan(points).any(axis=1)
    for name, (lo, hi) in bounds.items():
        if lo is not None:
            keep &= col[name] >= lo
        if hi is not None:
            keep &= col[name] <= hi
    if not keep.any():
        return (), 0.0
    mask = np.zeros(len(ids), dtype=bool)
    mask[keep] = pareto.nondominated_mask(points[keep], directions)
    front_ids, front_points = ids[mask], points[mask]
    front_col = {name: values[mask] for name, values in col.items()}

    fractions = np.column_stack([_fraction(front_col, o) for o in objectives])
    volume = pareto.hypervolume(np.clip(fractions, 0.0, 1.0), [1.0] * len(objectives))

    # Best first on the first objective, then the next ones.
    order = np.lexsort(pareto.to_minimisation(front_points, directions).T[::-1])
    return tuple(int(i) for i in front_ids[order]), volume


def _read_completed(session: Session, sweep_id: int, names: list[str]) -> np.ndarray:
    """(n, 1 + len(names)) floats: id, then the named measures, of the trials with a
    result (completed or stopped).

    NULL reads as NaN. Served by the covering index ix_trials_front (no table rows, no
    JSON). Core columns, not ORM attributes: the ORM's per-row work made the 10k-row read
    21 ms instead of 15 (the raw DBAPI cursor: 14; benchmarks/pareto_api.py).
    """
    table = Trial.__table__
    stmt = select(table.c.id, *(table.c[name] for name in names)).where(
        table.c.sweep_id == sweep_id, table.c.status.in_(_WITH_RESULT)
    )
    rows = session.execute(stmt).all()
    width = len(names) + 1
    values = (math.nan if v is None else v for v in itertools.chain.from_iterable(rows))
    return np.fromiter(values, dtype=float, count=len(rows) * width).reshape(len(rows), width)


def _fraction(col: Mapping[str, np.ndarray], objective: Objective) -> np.ndarray:
    """The objective as a minimised fraction in [0, 1] (DESIGN.md §5)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if objective == Objective.ACCURACY:
            return 1.0 - col["accuracy"]
        if objective == Objective.SPARSITY:
            return 1.0 - col["sparsity"]
        dense = col[f"{objective}_dense"]
        # A missing or zero dense size gives no credit (fraction 1).
        fraction = np.where(dense > 0, col[objective] / dense, 1.0)
        return np.where(np.isnan(fraction), 1.0, fraction)


def _parse_constraints(
    constraints: Mapping[str, float],
) -> dict[str, tuple[float | None, float | None]]:
    bounds: dict[str, tuple[float | None, float | None]] = {}
    for key, value in constraints.items():
        if value is None:
            continue
        kind, _, name = key.partition("_")
        if kind not in ("min", "max") or name not in OBJECTIVE_DIRECTIONS:
            raise ValueError(f"unknown constraint {key!r} (use min_/max_ + an objective)")
        if not math.isfinite(float(value)):
            raise ValueError(f"constraint {key} must be finite")
        lo, hi = bounds.get(name, (None, None))
        bounds[name] = (float(value), hi) if kind == "min" else (lo, float(value))
    return bounds
