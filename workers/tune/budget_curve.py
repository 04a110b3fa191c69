"""The numeric pieces of the budget planner (``workers/tune/budget.py``): pure functions of
the probes' predictions and the finals' measures, no state."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from service.spec import ConstraintKind

__all__ = [
    "FLOOR",
    "REL",
    "Point",
    "ProbeCurve",
    "isotonic_decreasing",
    "meets",
    "same_lam",
    "secant",
]

REL = 1e-9  # two λ closer than this (relative) are the same λ
FLOOR = 1e-9  # fractions of dense are floored here before taking logs


def same_lam(a: float, b: float) -> bool:
    return abs(math.log(a / b)) <= REL


def meets(kind: ConstraintKind, value: float, measures: Mapping[str, Any]) -> bool:
    """Whether measured §4 ``measures`` satisfy the constraint ``kind`` ≤/≥ ``value``
    (inclusive); a missing or non-finite measure does not."""
    raw = measures.get(kind.split("_", 1)[1])
    measured = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
    if measured is None or not math.isfinite(measured):
        return False
    return measured >= value if kind == "min_sparsity" else measured <= value


def isotonic_decreasing(values: Sequence[float]) -> list[float]:
    """The least-squares non-increasing fit of ``values`` (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [sum, count]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    return [s / n for s, n in blocks for _ in range(int(n))]


def secant(xa: float, ya: float, xb: float, yb: float, y: float) -> float:
    """x where the line through (xa, ya), (xb, yb) reaches y (the middle if flat)."""
    return (xa + xb) / 2 if ya == yb else xa + (ya - y) / (ya - yb) * (xb - xa)


class Point(NamedTuple):
    """A probed λ, its fitted log predicted fraction of dense, and whether it is settled."""

    lam: float
    log_fraction: float
    settled: bool


class ProbeCurve:
    """The probes' predictions as a curve of λ: equal λ averaged, made non-increasing
    (isotonic fit of the log fractions), piecewise linear in log λ with its end segments
    extended (a constant with one point).

    Args:
        probes: (λ, predicted fraction of dense, settled) of each probe.
        log_target: log of the bound as a fraction of dense.
    """

    def __init__(self, probes: Iterable[tuple[float, float, bool]], log_target: float) -> None:
        groups: list[tuple[float, list[float], bool]] = []
        for lam, fraction, settled in sorted(probes, key=lambda p: p[0]):
            y = math.log(max(fraction, FLOOR))
            if groups and same_lam(groups[-1][0], lam):
                groups[-1] = (groups[-1][0], [*groups[-1][1], y], groups[-1][2] and settled)
            else:
                groups.append((lam, [y], settled))
        fit = isotonic_decreasing([sum(ys) / len(ys) for _, ys, _ in groups])
        self.points = [Point(lam, f, s) for (lam, _, s), f in zip(groups, fit, strict=True)]
        self.log_target = log_target
        #: index of the first point predicted to meet the bound, None if none does
        self.first_meeting = next(
            (i for i, p in enumerate(self.points) if p.log_fraction <= log_target), None
        )

    def boundary(self) -> float | None:
        """λ where the curve crosses the bound between two points (log-log), or None."""
        j = self.first_meeting
        if not j:
            return None
        a, b = self.points[j - 1], self.points[j]
        x = secant(
            math.log(a.lam), a.log_fraction, math.log(b.lam), b.log_fraction, self.log_target
        )
        return math.exp(x)

    def __call__(self, lam: float) -> float:
        """The predicted fraction at ``lam`` (linear in log λ between points)."""
        xs = [math.log(p.lam) for p in self.points]
        ys = [math.exp(p.log_fraction) for p in self.points]
        if len(xs) < 2:
            return ys[0]
        x = math.log(lam)
        i = next((k for k in range(len(xs) - 2, 0, -1) if xs[k] <= x), 0)
        return ys[i] + (ys[i + 1] - ys[i]) * (x - xs[i]) / (xs[i + 1] - xs[i])

    def inverse(self, fraction: float, lo: float, hi: float) -> float:
        """log λ in [lo, hi] where the curve reaches ``fraction`` (an end if it does not)."""
        xa, xb = math.log(lo), math.log(hi)
        for _ in range(60):
            mid = (xa + xb) / 2
            xa, xb = (mid, xb) if self(math.exp(mid)) > fraction else (xa, mid)
        return (xa + xb) / 2

    def top(self, lam_min: float) -> float:
        """The curve's top: its value at ``lam_min`` or its first point, the larger."""
        return max(self(lam_min), math.exp(self.points[0].log_fraction))

    def scaled_crossing(
        self, k: float, target: float, lam_min: float, lo: float, hi: float
    ) -> float:
        """log λ in [lo, hi] where the curve, its drop from :meth:`top` scaled by ``k``,
        reaches ``target`` (the middle of [lo, hi] with under 2 points)."""
        if len(self.points) < 2 or k <= 0:
            return (math.log(lo) + math.log(hi)) / 2
        top = self.top(lam_min)
        return self.inverse(top - (top - target) / k, lo, hi)
