"""Pareto early stopping of a sweep's trials: the multi-objective rung rule (issue 13).

The rule is MO-ASHA (Schmucker et al. 2021, "Multi-objective asynchronous successive
halving") in ASHA's *stopping* variant (as Ray Tune's ``ASHAScheduler``): a trial that
reaches a rung epoch ``g·η^k`` is compared with the trials that reached the same rung
before it, and stops unless it is among the top ``max(1, ceil(n/η))`` of those ``n``
points (itself included). Points are ranked as MO-ASHA's ``NonDominatedPriority`` ranks
them: successive non-dominated fronts, and inside a front an ε-net order (Clarkson's greedy
farthest-point order: seeded with the most accurate point, then each time the point whose
distance to the points already chosen is largest) on objectives normalised by their ranks
(MO-ASHA's quantile normalisation), so a front keeps its spread-out points first.

Objectives, per issue 13: accuracy ↑ against FLOPs ↓, and accuracy ↑ against sparsity ↑.
Our reading of "a trial stops when the trials at the rung dominate it on (accuracy, FLOPs)
OR on (accuracy, sparsity)": the ranking above is done separately on each pair, and a trial
continues only if it is in the top on *both* pairs. The FLOPs of a rung point are the
model's expected FLOPs under its gates at that epoch (or, with ``predict``, their
extrapolation to the last epoch: :func:`predict_final_flops`); its sparsity is
``1 − expected_l0 / params_dense``. Ties: a trial whose objective values equal those of a
point in the top is kept too. Since the objectives are rank-normalised, a prediction changes
a decision only where it reorders the trials' FLOPs (a monotone map of them changes
nothing); ``benchmarks/search_efficiency.py`` measures whether it does.

Everything here is pure Python and numpy; the runner wraps :class:`RungBoard` in a Ray actor.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "RungBoard",
    "RungPoint",
    "keep_at_rung",
    "predict_final_flops",
    "rank_order",
    "rung_epochs",
]


def rung_epochs(grace: int, eta: float, epochs: int) -> list[int]:
    """The rung epochs ``g·η^k`` (k = 0, 1, ...) rounded to integers, strictly increasing,
    without duplicates, and below ``epochs`` (the last epoch is the end, not a rung).

    >>> rung_epochs(1, 3, 12)
    [1, 3, 9]
    """
    if grace < 1:
        raise ValueError(f"grace must be a positive number of epochs, got {grace!r}")
    if not (math.isfinite(eta) and eta > 1):
        raise ValueError(f"eta (the reduction factor) must be > 1, got {eta!r}")
    rungs: list[int] = []
    value = float(grace)
    while True:
        epoch = math.floor(value + 0.5)
        if epoch >= epochs:
            return rungs
        if not rungs or epoch > rungs[-1]:
            rungs.append(epoch)
        value *= eta


@dataclass(frozen=True)
class RungPoint:
    """One trial at one rung: its key, test accuracy (↑), expected FLOPs or their
    prediction (↓) and expected sparsity (↑)."""

    key: Any
    accuracy: float
    flops: float
    sparsity: float


def _average_ranks(column: np.ndarray) -> np.ndarray:
    """0-based ranks of ``column`` (ascending), ties given their average rank."""
    order = np.argsort(column, kind="stable")
    ranks = np.empty(len(column), dtype=float)
    ranks[order] = np.arange(len(column), dtype=float)
    _, inverse, counts = np.unique(column, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return np.asarray(sums[inverse] / counts[inverse], dtype=float)


def _nondominated(values: np.ndarray) -> np.ndarray:
    """Mask of the rows no other row dominates (all columns minimised; copies all kept)."""
    le = np.all(values[:, None, :] <= values[None, :, :], axis=2)  # le[i, j]: i ≤ j everywhere
    lt = np.any(values[:, None, :] < values[None, :, :], axis=2)
    dominated_by = le & lt  # [i, j]: i dominates j
    return np.asarray(~dominated_by.any(axis=0), dtype=bool)


def _epsilon_net(points: np.ndarray) -> list[int]:
    """Greedy farthest-point order of ``points`` (rows), seeded with the row smallest in
    column 0; ties go to the lower index."""
    n = len(points)
    first = int(np.lexsort(points.T[::-1])[0])  # smallest column 0, then column 1, ...
    order = [first]
    nearest = np.linalg.norm(points - points[first], axis=1)
    chosen = np.zeros(n, dtype=bool)
    chosen[first] = True
    while len(order) < n:
        candidates = np.where(chosen, -np.inf, nearest)
        nxt = int(np.argmax(candidates))
        order.append(nxt)
        chosen[nxt] = True
        nearest = np.minimum(nearest, np.linalg.norm(points - points[nxt], axis=1))
    return order


def rank_order(values: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """MO-ASHA's order of minimisation ``values`` (n, d): best first.

    Columns are normalised to their average ranks / (n − 1); rows are taken front by front
    (non-dominated sorting), each front in ε-net order (seed: the lowest column 0).
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"values must be (n, d), got shape {v.shape}")
    n = len(v)
    if n == 0:
        return []
    if np.isnan(v).any():
        raise ValueError("values contain NaN")
    scale = max(1, n - 1)
    normalised = np.column_stack([_average_ranks(v[:, j]) / scale for j in range(v.shape[1])])
    remaining = np.arange(n)
    order: list[int] = []
    while remaining.size:
        front_mask = _nondominated(v[remaining])
        front = remaining[front_mask]
        order.extend(int(front[i]) for i in _epsilon_net(normalised[front]))
        remaining = remaining[~front_mask]
    return order


def _kept(values: np.ndarray, index: int, top: int) -> bool:
    """Is row ``index`` among the first ``top`` of :func:`rank_order`, or equal to one?"""
    best = rank_order(values)[:top]
    return index in best or any(np.array_equal(values[index], values[j]) for j in best)


def keep_at_rung(point: RungPoint, recorded: Sequence[RungPoint], eta: float) -> bool:
    """MO-ASHA's stopping rule: does ``point`` continue past its rung?

    ``recorded``: the points that reached the rung before (a point with ``point``'s key is
    ignored). With the ``n`` points (``point`` included) ranked by :func:`rank_order`, the
    trial continues iff it is in the top ``max(1, ceil(n/η))`` (or equals a point there) on
    (accuracy ↑, FLOPs ↓) and on (accuracy ↑, sparsity ↑). With n < 2 it continues.
    """
    if not (math.isfinite(eta) and eta > 1):
        raise ValueError(f"eta (the reduction factor) must be > 1, got {eta!r}")
    others = [p for p in recorded if p.key != point.key]
    n = len(others) + 1
    if n < 2:
        return True
    top = max(1, math.ceil(n / eta))
    points = [*others, point]
    acc = np.array([-p.accuracy for p in points], dtype=float)
    flops = np.array([p.flops for p in points], dtype=float)
    sparsity = np.array([-p.sparsity for p in points], dtype=float)
    index = n - 1
    return _kept(np.column_stack([acc, flops]), index, top) and _kept(
        np.column_stack([acc, sparsity]), index, top
    )


def predict_final_flops(trajectory: Sequence[tuple[int, float]], epochs: int) -> float:
    """Extrapolate an expected-FLOPs curve ``[(epoch, flops), ...]`` to epoch ``epochs``.

    L0 gates' expected FLOPs fall monotonically and settle early; the tail is modelled as
    ``a + b·exp(−c·t)``, i.e. per-epoch decrements that shrink geometrically. The ratio is
    the mean ratio of successive per-epoch decrements over the last four points; the
    remaining decrements are summed up to ``epochs``. When the decrements are not all
    positive (a flat or rising tail), or do not shrink (the curve is still accelerating
    and the asymptote cannot be read off), or fewer than three points are known, the
    prediction is the last value. The result lies in ``[0, first value]``.
    """
    points = sorted((int(e), float(f)) for e, f in trajectory)
    if not points:
        raise ValueError("the trajectory is empty")
    first, (last_epoch, last) = points[0][1], points[-1]
    prediction = last
    tail = points[-4:]
    if len(tail) >= 3 and epochs > last_epoch:
        steps = [
            (f0 - f1) / (e1 - e0) for (e0, f0), (e1, f1) in itertools.pairwise(tail) if e1 > e0
        ]
        if len(steps) >= 2 and all(d > 0 for d in steps):
            ratio = float(np.mean([b / a for a, b in itertools.pairwise(steps)]))
            if ratio < 1:
                remaining = epochs - last_epoch
                prediction = last - steps[-1] * ratio * (1 - ratio**remaining) / (1 - ratio)
    return float(min(max(prediction, 0.0), max(first, 0.0)))


def _value(record: Mapping[str, Any], name: str) -> float | None:
    value = record.get(name)
    return None if value is None else float(value)


class RungBoard:
    """The rung records of one sweep and the decisions taken there.

    Args:
        grace: first rung epoch ``g``.
        eta: reduction factor ``η`` (> 1).
        predict: rank on the predicted final expected FLOPs (:func:`predict_final_flops`)
            instead of the expected FLOPs at the rung.

    ``decide`` is asked after every epoch of every trial; ``seed`` rebuilds the board from
    stored epoch rows after a runner restart. Not thread-safe (the runner serialises calls
    through one Ray actor).
    """

    def __init__(self, grace: int, eta: float, *, predict: bool = False) -> None:
        rung_epochs(grace, eta, grace + 1)  # validates grace and eta
        self.grace = int(grace)
        self.eta = float(eta)
        self.predict = bool(predict)
        self.recorded: dict[int, dict[Any, RungPoint]] = {}
        self.decisions: dict[tuple[Any, int], bool] = {}  # (key, rung) -> stop

    def rungs(self, epochs: int) -> list[int]:
        return rung_epochs(self.grace, self.eta, epochs)

    def point(
        self, key: Any, history: Sequence[Mapping[str, Any]], *, epochs: int, params_dense: int
    ) -> RungPoint | None:
        """The rung point of ``history``'s last record (None without an accuracy)."""
        if not history:
            return None
        current = history[-1]
        accuracy = next(
            (a for r in reversed(history) if (a := _value(r, "accuracy")) is not None), None
        )
        flops = _value(current, "expected_flops")
        l0 = _value(current, "expected_l0")
        if accuracy is None or flops is None or l0 is None:
            return None
        if self.predict:
            curve = [
                (int(r["epoch"]), f)
                for r in history
                if (f := _value(r, "expected_flops")) is not None
            ]
            flops = predict_final_flops(curve, epochs)
        sparsity = 1.0 - l0 / float(params_dense) if params_dense > 0 else 0.0
        return RungPoint(key=key, accuracy=accuracy, flops=flops, sparsity=sparsity)

    def decide(
        self, key: Any, history: Sequence[Mapping[str, Any]], *, epochs: int, params_dense: int
    ) -> bool:
        """True = stop the trial ``key`` now. ``history``: its epoch records so far (dicts
        with ``epoch``, ``accuracy``, ``expected_l0``, ``expected_flops``), the last one the
        current epoch. Off a rung: False. The first ask at a rung records the point and
        decides; a repeated ask returns the same decision."""
        if not history:
            return False
        epoch = int(history[-1]["epoch"])
        if epoch not in self.rungs(epochs):
            return False
        cached = self.decisions.get((key, epoch))
        if cached is not None:
            return cached
        point = self.point(key, history, epochs=epochs, params_dense=params_dense)
        if point is None:  # nothing to rank on (no accuracy yet): continue, decide nothing
            return False
        at_rung = self.recorded.setdefault(epoch, {})
        # A resumed trial may be on the board already (seeded from its stored epochs):
        # keep_at_rung ignores a recorded point with its own key.
        stop = not keep_at_rung(point, list(at_rung.values()), self.eta)
        at_rung.setdefault(key, point)
        self.decisions[(key, epoch)] = stop
        return stop

    def seed(
        self, key: Any, history: Sequence[Mapping[str, Any]], *, epochs: int, params_dense: int
    ) -> None:
        """Record ``key``'s points at every rung its stored ``history`` reached (no
        decisions): the board as it was before a runner restart."""
        ordered = sorted(history, key=lambda r: int(r["epoch"]))
        rungs = set(self.rungs(epochs))
        for i, record in enumerate(ordered):
            epoch = int(record["epoch"])
            if epoch not in rungs or key in self.recorded.get(epoch, {}):
                continue
            point = self.point(key, ordered[: i + 1], epochs=epochs, params_dense=params_dense)
            if point is not None:
                self.recorded.setdefault(epoch, {})[key] = point

    def points(self, epoch: int) -> list[RungPoint]:
        """The points recorded at rung ``epoch``, in arrival order."""
        return list(self.recorded.get(epoch, {}).values())
