"""Budget-targeted search (issue 13): the most accurate model under a FLOPs, parameter or
sparsity constraint, in few trial-epochs. A pure planner (no Ray; its numerics in
``budget_curve.py``); ``budget_search.py`` drives it from Ray Tune. A larger λ gives a
sparser model, so the constraint holds above some boundary λ. The planner

1. probes a few λ log-spaced inside the bounds (at 1/(n+1), …, n/(n+1) of the log
   interval) for ``probe_epochs`` epochs each, in parallel;
2. predicts each probe's final FLOPs (expected-FLOPs curve) or parameters (expected-L0
   curve) with ``workers.tune.rungs.predict_final_flops``. A prediction is *settled* when
   the curve has (nearly) stopped falling or the predictor extrapolated it to a limit; an
   unsettled one is the curve's last value, an upper bound of where it is heading;
3. brackets the boundary in log λ between neighbouring probes (isotonic fit first, so noisy
   non-monotone predictions cannot break it) and, while the bracket's missing end is
   settled and trials remain, bisects it with one probe at a time. An end of the interval
   is probed only when every probe is on one side;
4. trains finals to the end. Settled bracket: λ at the interpolated boundary (at most one
   safety step below the smallest λ predicted to meet) and one safety step (×``safety``)
   further. Unsettled: one final where the probes' drops, scaled by epochs/probe_epochs
   (as if they went on at their pace), would meet the bound;
5. while trials remain, refines on MEASURED values, one final at a time: between the
   largest λ measured to miss and the smallest measured to meet (secant of the measured
   fraction vs the probes' curve u(λ)), or at least a safety step past the one side
   measured so far (log-log secant through its two nearest finals; with one, the probes'
   curve with its drop scaled to that final's), until the two are a safety step (on a
   grid: neighbours) apart.

An interval whose λ max is predicted (settled) to miss trains λ max, one whose λ min is
predicted to meet trains λ min; :attr:`BudgetPlanner.note` says so. ``best`` judges measured
values only (§4). The planner is deterministic, its state a function of the observed trials,
so :meth:`~BudgetPlanner.restore` after a runner restart continues the plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from service.spec import CONSTRAINT_KINDS, ConstraintKind
from workers.tune.budget_curve import (
    FLOOR,
    REL,
    Point,
    ProbeCurve,
    isotonic_decreasing,
    meets,
    same_lam,
    secant,
)
from workers.tune.rungs import predict_final_flops

__all__ = [
    "BudgetPlanner",
    "FinishedTrial",
    "Predictor",
    "Proposal",
    "isotonic_decreasing",
    "meets",
]

#: (trajectory of (epoch, value), final epoch) -> the value predicted at the final epoch.
Predictor = Callable[[Sequence[tuple[int, float]], int], float]
Kind = Literal["probe", "final"]

_SETTLED = 0.05  # settled: the last decrement, continued to the end, moves it < 5 %


@dataclass(frozen=True)
class Proposal:
    """One trial to run: λ, and the epoch to stop it at (None: train to the end).
    ``index`` is the issue order (0, 1, …), which the searcher uses to cycle seeds."""

    lam: float
    stop_at: int | None
    kind: Kind
    index: int


@dataclass(frozen=True)
class FinishedTrial:
    """A finished trial for :meth:`BudgetPlanner.restore`: its λ, epoch records (dicts with
    ``epoch``, ``expected_l0``, ``expected_flops``, …) and measures (None if it has none)."""

    lam: float
    history: Sequence[Mapping[str, Any]] = ()
    measures: Mapping[str, Any] | None = None


class _Probe(NamedTuple):
    lam: float
    fraction: float  # predicted final FLOPs or params, as a fraction of dense
    settled: bool


class _Final(NamedTuple):
    lam: float
    measures: Mapping[str, Any]


class BudgetPlanner:
    """Plans the trials of one budget search (module docstring: the algorithm).

    Args:
        kind: ``max_flops``, ``max_params`` or ``min_sparsity``.
        value: The bound: FLOPs per example, parameters, or a sparsity in [0, 1).
        lam_bounds: (λ min, λ max) to search, λ min > 0.
        epochs: Epochs of a full trial.
        n_trials: Trials the search may start in all (probes and finals).
        dense: Dense FLOPs (``max_flops``) or dense parameters (the other two).
        probe_epochs: Epochs of a probe; default ``max(2, epochs // 6)`` (at most ``epochs``).
        initial_probes: λ probed at first; default 2, 3 or 4 by the probe budget.
        n_finals: Trials kept for the first finals; default 1 for ``n_trials`` ≤ 4, else 2.
        safety: The factor of one safety step in λ.
        predictor: Final-value predictor; default ``rungs.predict_final_flops`` (any
            decaying expected-cost curve: expected L0 too).
        grid: Restrict every λ to these values (snapped: nearest in log; finals placed
            from a settled bracket upwards), e.g. a tabular benchmark's grid.
    """

    def __init__(
        self,
        kind: ConstraintKind,
        value: float,
        lam_bounds: tuple[float, float],
        epochs: int,
        n_trials: int,
        *,
        dense: float,
        probe_epochs: int | None = None,
        initial_probes: int | None = None,
        n_finals: int | None = None,
        safety: float = 1.3,
        predictor: Predictor | None = None,
        grid: Sequence[float] | None = None,
    ) -> None:
        lo, hi = (float(b) for b in lam_bounds)
        if kind not in CONSTRAINT_KINDS:
            raise ValueError(f"unknown constraint {kind!r}; one of {', '.join(CONSTRAINT_KINDS)}")
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ValueError(f"lam_bounds must be 0 < min <= max, got {lam_bounds}")
        if not (0 <= value < 1 if kind == "min_sparsity" else value > 0):
            raise ValueError(f"{kind} out of range: {value}")
        if epochs < 1 or n_trials < 1 or not dense > 0 or not safety > 1:
            raise ValueError("epochs and n_trials must be >= 1, dense > 0 and safety > 1")
        self.kind: ConstraintKind = kind
        self.value, self.lo, self.hi = float(value), lo, hi
        inside = {float(g) for g in grid or () if lo * (1 - REL) <= g <= hi * (1 + REL)}
        self.grid = sorted(inside)
        if grid is not None and not self.grid:
            raise ValueError(f"no grid λ inside lam_bounds {lam_bounds}")
        self.epochs, self.n_trials = int(epochs), int(n_trials)
        self.dense, self.safety = float(dense), float(safety)
        self.probe_epochs = min(self.epochs, probe_epochs or max(2, self.epochs // 6))
        self.n_finals = min(self.n_trials, n_finals or (1 if self.n_trials <= 4 else 2))
        self.probe_budget = self.n_trials - self.n_finals
        if initial_probes is None:
            initial_probes = 2 if self.probe_budget <= 3 else 3 if self.probe_budget <= 5 else 4
        self.initial = self._initial_lams(min(initial_probes, self.probe_budget))
        self._predictor = predictor
        self._key = "expected_flops" if kind == "max_flops" else "expected_l0"
        target = 1.0 - self.value if kind == "min_sparsity" else self.value / self.dense
        self._log_target = math.log(max(target, FLOOR))
        self._probes: list[_Probe] = []
        self._finals: list[_Final] = []
        self._flight: list[Proposal] = []
        self._failed: list[Proposal] = []
        self._epochs_spent = 0
        self._complete = False
        self.notes: list[str] = []

    # ------------------------------------------------------------------ public state

    @property
    def issued(self) -> int:
        """Trials proposed so far (finished, failed or in flight), restored ones included."""
        return len(self._probes) + len(self._finals) + len(self._failed) + len(self._flight)

    in_flight = property(lambda self: tuple(self._flight), doc="Proposals not yet observed.")

    @property
    def done(self) -> bool:
        """Nothing is in flight and nothing more will be proposed."""
        return not self._flight and self._decide() is None

    @property
    def note(self) -> str | None:
        """Why the plan left the usual path (infeasible, unsettled, …), or None."""
        return "; ".join(self.notes) or None

    @property
    def trial_epochs(self) -> int:
        """Epochs trained by the trials observed so far (probes and finals)."""
        return self._epochs_spent

    def boundary(self) -> float | None:
        """The λ where the predictions cross the bound (log-log interpolation), or None."""
        return self._probe_curve().boundary()

    def predicted(self) -> list[tuple[float, float]]:
        """(λ, predicted final FLOPs or params) of every observed probe, by λ."""
        return [(p.lam, p.fraction * self.dense) for p in sorted(self._probes, key=lambda p: p.lam)]

    def meets(self, measures: Mapping[str, Any]) -> bool:
        return meets(self.kind, self.value, measures)

    def best(self) -> tuple[float, Mapping[str, Any]] | None:
        """(λ, measures) of the most accurate final meeting the constraint on its measured
        values; ties go to the smaller λ. None when no final meets it."""
        ok = [f for f in self._finals if self.meets(f.measures)]
        if not ok:
            return None
        top = max(ok, key=lambda f: (float(f.measures["accuracy"]), -f.lam))
        return top.lam, top.measures

    # ------------------------------------------------------------------ proposing

    def next(self) -> Proposal | None:
        """The next trial to start, or None: wait for trials in flight (or :attr:`done`)."""
        decision = self._decide()
        if decision is None:
            return None
        lam, kind = decision
        stop_at = self.probe_epochs if kind == "probe" else None
        proposal = Proposal(lam=lam, stop_at=stop_at, kind=kind, index=self.issued)
        self._flight.append(proposal)
        return proposal

    def _decide(self) -> tuple[float, Kind] | None:
        if self._complete or self.issued >= self.n_trials:
            return None
        started = [*self._flight, *self._failed]
        n_final = len(self._finals) + sum(1 for p in started if p.kind == "final")
        if not n_final:
            probe = self._next_probe()
            if probe is not None:
                return probe, "probe"
            if any(p.kind == "probe" for p in self._flight):
                return None
        plan = self._first_finals()
        if n_final < len(plan):
            return plan[n_final], "final"
        if self._flight:
            return None
        lam = self._refine()
        if lam is not None:
            return lam, "final"
        self._complete = True
        return None

    def _snap(self, lam: float, *, up: bool = False) -> float:
        """``lam`` inside the bounds; with a grid, the grid's nearest λ in log (``up``: the
        smallest grid λ at or above ``lam``)."""
        lam = min(self.hi, max(self.lo, lam))
        if not self.grid:
            return lam
        if up:
            return next((g for g in self.grid if g >= lam * (1 - REL)), self.grid[-1])
        return min(self.grid, key=lambda g: abs(math.log(g / lam)))

    def _between(self, a: float, b: float, x: float) -> float | None:
        """A λ strictly inside (a, b) near exp(x), kept in the middle half of the log
        interval (so a bracket surely shrinks); None when (a, b) is a safety step or less
        (on a grid: when no grid λ lies inside)."""
        xa, xb = math.log(a), math.log(b)
        x = min(max(x, xa + (xb - xa) / 4), xb - (xb - xa) / 4)
        if not self.grid:
            return None if b <= a * self.safety else math.exp(x)
        inside = [g for g in self.grid if a * (1 + REL) < g < b * (1 - REL)]
        return min(inside, key=lambda g: abs(math.log(g) - x)) if inside else None

    def _initial_lams(self, n: int) -> list[float]:
        a, b = math.log(self.lo), math.log(self.hi)
        lams: list[float] = []
        for i in range(n):
            lam = self._snap(math.exp(a + (b - a) * (i + 1) / (n + 1)))
            if not any(same_lam(lam, other) for other in lams):
                lams.append(lam)
        return lams

    def _next_probe(self) -> float | None:
        tried = [p.lam for p in self._probes]
        tried += [p.lam for p in (*self._flight, *self._failed) if p.kind == "probe"]
        if len(tried) >= self.probe_budget:
            return None
        for lam in self.initial:
            if not any(same_lam(lam, t) for t in tried):
                return lam
        if any(p.kind == "probe" for p in self._flight):
            return None  # the next probe depends on these
        points, j = self._fitted()
        if not points:
            return None
        if j is None:  # all predicted to miss: is the most constrained end known?
            top = points[-1]
            return None if same_lam(top[0], self.hi) or not top[2] else self.hi
        if j == 0:  # all predicted to meet: is the least constrained end known?
            return None if same_lam(points[0][0], self.lo) else self.lo
        (a, _, settled), (b, _, _) = points[j - 1], points[j]
        star = self.boundary()
        return self._between(a, b, math.log(star or a)) if settled else None

    def _first_finals(self) -> list[float]:
        points, j = self._fitted()
        bound = self._describe_bound()
        if not points:
            self._note("no probe result: trained the most constrained end (λ max)")
            return [self.hi]
        if j is None and points[-1][2]:
            lam, frac, _ = points[-1]
            where = (
                "infeasible within the λ interval" if same_lam(lam, self.hi) else "λ max unprobed"
            )
            self._note(
                f"{where}: predicted {math.exp(frac) * self.dense:.4g} at λ {lam:.4g} misses "
                f"{bound}; trained the most constrained end (λ max {self.hi:.4g})"
            )
            return [self.hi]
        if j == 0:
            lam = points[0][0]
            where = "trivially feasible" if same_lam(lam, self.lo) else "λ min unprobed"
            self._note(f"{where}: λ {lam:.4g} is predicted to meet {bound}; trained it")
            return [lam]
        if j is None or not points[j - 1][2]:
            top = self.hi if j is None else points[j][0]
            self._note(
                "probe predictions unsettled (the expected-cost curves still fall): finals "
                f"search on measured values below λ {top:.4g}"
            )
            # the probes' drops scaled as if they went on at their pace to the last epoch
            x = self._calibrated(self.epochs / self.probe_epochs, self.lo, top)
            return [self._snap(math.exp(x))]
        # Interpolation is only as good as the bracket is narrow: start at most one safety
        # step below the smallest λ predicted to meet, so the safety step lands on or past it.
        star = max(self.boundary() or self.hi, points[j][0] / self.safety)
        start = 1 if self.n_finals == 1 else 0
        plan: list[float] = []
        for i in range(start, start + self.n_finals):
            lam = self._snap(star * self.safety**i, up=True)
            if not any(same_lam(lam, p) for p in plan):
                plan.append(lam)
        return plan

    def _refine(self) -> float | None:
        """The next final from measured values (module docstring, step 5), or None."""
        finals = sorted(self._finals, key=lambda f: f.lam)
        ok = [f for f in finals if self.meets(f.measures)]
        b = ok[0] if ok else None
        missed = [f for f in finals if not self.meets(f.measures) and (b is None or f.lam < b.lam)]
        a = missed[-1] if missed else None
        t = math.exp(self._log_target)
        lam = None
        if a is not None and b is not None:  # secant on the probes' curve u(λ) as abscissa
            xa, xb = math.log(a.lam), math.log(b.lam)
            x, fa, fb = (xa + xb) / 2, self._u(a), self._u(b)
            if fa and fb and fa[0] != fb[0] and fa[1] != fb[1]:
                u = fa[0] + (t - fa[1]) / (fb[1] - fa[1]) * (fb[0] - fa[0])
                x = self._probe_curve().inverse(u, a.lam, b.lam)
            lam = self._between(a.lam, b.lam, x)
        elif b is not None or a is not None:
            lam = self._one_sided(a, b, t)
        if lam is None and b is None and a is not None and same_lam(a.lam, self.hi):
            self._note(f"no final met {self._describe_bound()}, λ max {self.hi:.4g} included")
        return None if lam is None or any(same_lam(lam, f.lam) for f in finals) else lam

    def _one_sided(self, a: _Final | None, b: _Final | None, t: float) -> float | None:
        """All finals met (``b``, the smallest) or all missed (``a``, the largest): at least
        a safety step to the side not measured, where the log-log secant through the two
        finals nearest it reaches the bound, or with one final the probes' curve calibrated
        on it; never past λ min, λ max or the settled probe predicted to miss."""
        points, j = self._fitted()
        known = b or a
        assert known is not None
        end = self.hi if b is None else points[j - 1][0] if j and points[j - 1][2] else self.lo
        lo, hi = sorted((known.lam, end))
        if hi <= lo * (1 + REL):
            return None
        side = sorted(
            (f for f in self._finals if self.meets(f.measures) == (b is not None)),
            key=lambda f: f.lam,
            reverse=b is None,
        )
        x = (math.log(lo) + math.log(hi)) / 2
        ms = [self._measured(f.measures) for f in side[:2]]
        if len(side) > 1 and ms[0] != ms[1]:
            xs = [math.log(f.lam) for f in side[:2]]
            x = secant(xs[1], ms[1], xs[0], ms[0], self._log_target)
        elif (fit := self._u(known)) is not None:
            top = self._probe_curve().top(self.lo)
            if top > fit[0] and top > fit[1]:
                x = self._calibrated((top - fit[1]) / (top - fit[0]), lo / 1e3, hi * 1e3)
        step = math.log(self.safety)
        x = max(x, math.log(lo) + step) if a is not None else min(x, math.log(hi) - step)
        x = min(max(x, math.log(lo)), math.log(hi))
        if not self.grid:
            return math.exp(x)
        grid = [g for g in self.grid if lo * (1 - REL) <= g <= hi * (1 + REL)]
        grid = [g for g in grid if not same_lam(g, known.lam)]
        return min(grid, key=lambda g: abs(math.log(g) - x)) if grid else None

    def _calibrated(self, k: float, lo: float, hi: float) -> float:
        """log λ in [lo, hi] where the probes' curve, its drop scaled by k, meets the bound."""
        t = math.exp(self._log_target)
        return self._probe_curve().scaled_crossing(k, t, self.lo, lo, hi)

    def _u(self, final: _Final) -> tuple[float, float] | None:
        """(the probes' curve at a final's λ, its measured fraction), or None: < 2 probes."""
        curve = self._probe_curve()
        if len(curve.points) < 2:
            return None
        return curve(final.lam), math.exp(self._measured(final.measures))

    def _measured(self, measures: Mapping[str, Any]) -> float:
        """Log of a final's measured FLOPs or params as a fraction of dense."""
        if self.kind == "min_sparsity":
            fraction = 1.0 - float(measures["sparsity"])
        else:
            fraction = float(measures[self.kind.split("_", 1)[1]]) / self.dense
        return math.log(max(fraction, FLOOR))

    def _note(self, text: str) -> None:
        self.notes += [] if text in self.notes else [text]

    def _describe_bound(self) -> str:
        op = "≥" if self.kind == "min_sparsity" else "≤"
        return f"{self.kind.split('_', 1)[1]} {op} {self.value:.4g}"

    def _probe_curve(self) -> ProbeCurve:
        return ProbeCurve(self._probes, self._log_target)

    def _fitted(self) -> tuple[list[Point], int | None]:
        """(λ, fitted log fraction, settled) of the probes by λ, and the index of the first
        predicted to meet the bound (or None)."""
        curve = self._probe_curve()
        return curve.points, curve.first_meeting

    # ------------------------------------------------------------------ observing

    def _take(self, lam: float, kind: Kind | None = None) -> Proposal | None:
        for i, p in enumerate(self._flight):
            if same_lam(p.lam, lam) and (kind is None or p.kind == kind):
                return self._flight.pop(i)
        return None

    def _predict(self, history: Sequence[Mapping[str, Any]]) -> tuple[float, bool] | None:
        """(predicted final fraction of dense, settled) of a probe's records, or None."""
        curve = sorted(
            (int(r["epoch"]), float(r[self._key]))
            for r in history
            if r.get(self._key) is not None and math.isfinite(float(r[self._key]))
        )
        if not curve:
            return None
        value = float((self._predictor or predict_final_flops)(curve, self.epochs))
        if not math.isfinite(value):
            return None
        (e_last, last), left = curve[-1], self.epochs - curve[-1][0]
        step = (curve[-2][1] - last) / max(1, e_last - curve[-2][0]) if len(curve) > 1 else 0.0
        settled = left <= 0 or value < last * (1 - 1e-6) or step * left <= _SETTLED * last
        return max(value / self.dense, FLOOR), settled

    def observe_probe(self, lam: float, history: Sequence[Mapping[str, Any]]) -> None:
        """A probe ended; ``history`` = its epoch records. No usable record = a failure."""
        proposal = self._take(lam, "probe") or Proposal(lam, self.probe_epochs, "probe", -1)
        prediction = self._predict(history)
        self._epochs_spent += max((int(r["epoch"]) for r in history), default=0)
        if prediction is None:
            self._failed.append(proposal)
        else:
            self._probes.append(_Probe(float(lam), *prediction))

    def observe_final(self, lam: float, measures: Mapping[str, Any]) -> None:
        """A final trial ended (completed, or stopped early by the runner) with §4 measures."""
        self._take(lam, "final")
        self._finals.append(_Final(float(lam), dict(measures)))
        stopped = measures.get("stopped_epoch")
        self._epochs_spent += int(stopped) if stopped else self.epochs

    def observe_failure(self, lam: float) -> None:
        """A proposed trial failed without a usable result; it still counts as a trial."""
        proposal = self._take(lam)
        if proposal is not None:
            self._failed.append(proposal)

    def restore(self, trials: Iterable[FinishedTrial]) -> None:
        """Warm start from trials finished before a runner restart.

        A trial whose last epoch is at most ``probe_epochs`` (and short of ``epochs``) was a
        probe, any other a final; each counts toward ``n_trials``.
        """
        for trial in trials:
            last = max((int(r["epoch"]) for r in trial.history), default=0)
            stopped = (trial.measures or {}).get("stopped_epoch")
            last = max(last, int(stopped or 0))
            if trial.measures is not None and not (0 < last <= self.probe_epochs < self.epochs):
                self.observe_final(trial.lam, trial.measures)
            else:
                self.observe_probe(trial.lam, trial.history)
