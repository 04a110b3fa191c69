"""The budget planner (issue 13) on synthetic λ → FLOPs curves: no training, no Ray."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import pytest

from workers.tune.budget import (
    BudgetPlanner,
    FinishedTrial,
    Proposal,
    isotonic_decreasing,
    meets,
)
from workers.tune.budget_curve import ProbeCurve

DENSE = 10_000.0
EPOCHS = 30
LO, HI = 1e-3, 10.0


def curve(lam: float) -> float:
    """True final FLOPs fraction: flat near 0.9 for small λ, falling as λ^-1.2 past 0.1."""
    return 0.9 / (1.0 + (lam / 0.1) ** 1.2)


def boundary(target: float) -> float:
    """λ where curve(λ) = target."""
    return 0.1 * (0.9 / target - 1.0) ** (1 / 1.2)


def jitter(lam: float, size: float) -> float:
    """A deterministic multiplicative noise factor in [e^-size, e^size]."""
    h = math.sin(12.9898 * math.log(lam) * 1e3) * 43758.5453
    return math.exp(size * (2 * (h - math.floor(h)) - 1))


def history(lam: float, upto: int, *, noise: float = 0.0) -> list[dict[str, float]]:
    """Epoch records whose expected FLOPs sit at the (noisy) final value from epoch 1 on,
    so the last-value predictor below predicts it."""
    value = DENSE * curve(lam) * jitter(lam, noise)
    return [
        {"epoch": e, "accuracy": 0.9, "expected_flops": value, "expected_l0": value / 2}
        for e in range(1, upto + 1)
    ]


def last_value(trajectory: Sequence[tuple[int, float]], epochs: int) -> float:
    return trajectory[-1][1]


def measures(lam: float) -> dict[str, float]:
    """Measured values: the true curve; accuracy falls with λ (smaller λ = better)."""
    flops = DENSE * curve(lam)
    return {
        "accuracy": 0.99 - 0.01 * math.log10(lam / LO),
        "flops": flops,
        "params": flops / 2,
        "sparsity": 1 - flops / DENSE,
    }


def planner(target: float, n_trials: int, **kwargs: object) -> BudgetPlanner:
    options: dict[str, object] = {"dense": DENSE, "predictor": last_value, **kwargs}
    return BudgetPlanner(
        "max_flops",
        target * DENSE,
        (LO, HI),
        EPOCHS,
        n_trials,
        **options,  # type: ignore[arg-type]
    )


def drive(
    plan: BudgetPlanner,
    *,
    noise: float = 0.0,
    measure: Callable[[float], dict[str, float]] = measures,
    limit: int | None = None,
) -> list[Proposal]:
    """Run the plan to the end, every ready proposal in parallel; returns all proposals."""
    issued: list[Proposal] = []
    while not plan.done:
        batch = []
        while (p := plan.next()) is not None:
            batch.append(p)
        assert batch, "a plan that is not done must propose while nothing is in flight"
        for p in batch:
            if limit is not None and len(issued) >= limit:
                return issued
            issued.append(p)
            if p.kind == "probe":
                assert p.stop_at is not None
                plan.observe_probe(p.lam, history(p.lam, p.stop_at, noise=noise))
            else:
                assert p.stop_at is None
                plan.observe_final(p.lam, measure(p.lam))
    return issued


@pytest.mark.parametrize("target", [0.5, 0.25, 0.1, 0.03])
@pytest.mark.parametrize("n_trials", [3, 5, 8, 12])
def test_converges_to_the_feasible_side(target: float, n_trials: int) -> None:
    plan = planner(target, n_trials)
    issued = drive(plan)
    assert len(issued) <= n_trials
    best = plan.best()
    assert best is not None
    lam, m = best
    assert m["flops"] <= target * DENSE
    assert boundary(target) <= lam * (1 + 1e-9)
    if n_trials >= 5:
        assert plan.note is None
    if n_trials >= 8:  # bisected to within a safety step: the finals sit at the boundary
        assert lam <= boundary(target) * plan.safety * 1.05


@pytest.mark.parametrize("target", [0.4, 0.25, 0.1])
@pytest.mark.parametrize("n_trials", [4, 6, 8, 10])
def test_noisy_non_monotone_predictions(target: float, n_trials: int) -> None:
    plan = planner(target, n_trials)
    issued = drive(plan, noise=0.15)
    assert len(issued) <= n_trials
    best = plan.best()
    assert best is not None and best[1]["flops"] <= target * DENSE
    if n_trials >= 6:
        assert best[0] <= boundary(target) * 4


def test_noisy_predictions_are_non_monotone_here() -> None:
    """The noise above really breaks monotonicity somewhere (else the test proves little)."""
    lams = [LO * (HI / LO) ** (i / 40) for i in range(41)]
    values = [curve(lam) * jitter(lam, 0.15) for lam in lams]
    assert any(b > a for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("n_trials", list(range(1, 16)))
@pytest.mark.parametrize("target", [0.95, 0.25, 1e-4])
def test_never_more_than_n_trials(n_trials: int, target: float) -> None:
    plan = planner(target, n_trials)
    issued = drive(plan, noise=0.1)
    assert len(issued) <= n_trials
    assert plan.issued == len(issued)
    assert plan.done and plan.next() is None
    assert [p.index for p in issued] == list(range(len(issued)))


def test_three_trials_are_two_probes_and_one_final() -> None:
    plan = planner(0.25, 3)
    issued = drive(plan)
    assert [p.kind for p in issued] == ["probe", "probe", "final"]
    assert [p.lam for p in issued[:2]] == pytest.approx([LO * 10 ** (4 / 3), LO * 10 ** (8 / 3)])
    assert all(p.stop_at == plan.probe_epochs == 5 for p in issued[:2])
    assert plan.trial_epochs == 2 * 5 + EPOCHS
    # the one final takes the safety step from the interpolated boundary, and never lands
    # below the probe predicted to meet the bound
    assert issued[2].lam >= issued[1].lam


def test_probes_run_in_parallel_then_bisect_one_at_a_time() -> None:
    plan = planner(0.25, 8)
    first = []
    while (p := plan.next()) is not None:
        first.append(p)
    assert len(first) == 4 and all(p.kind == "probe" for p in first)
    assert [p.lam for p in first] == pytest.approx([LO * 10 ** (4 * i / 5) for i in range(1, 5)])
    assert not plan.done
    for p in first:
        plan.observe_probe(p.lam, history(p.lam, 5))
    bisect = plan.next()
    assert bisect is not None and bisect.kind == "probe" and plan.next() is None
    missing = [lam for lam, flops in plan.predicted() if flops > 0.25 * DENSE]
    meeting = [lam for lam, flops in plan.predicted() if flops <= 0.25 * DENSE]
    assert max(missing) < bisect.lam < min(meeting)


@pytest.mark.parametrize(("target", "end"), [(1e-5, HI), (0.95, LO)])
def test_an_end_is_probed_only_when_every_probe_is_on_one_side(target: float, end: float) -> None:
    plan = planner(target, 8)
    issued = drive(plan)
    probes = [p.lam for p in issued if p.kind == "probe"]
    assert len(probes) == 5 and probes[-1] == pytest.approx(end)
    assert [p.lam for p in issued if p.kind == "final"] == pytest.approx([end])


def test_infeasible_trains_the_most_constrained_end() -> None:
    plan = planner(1e-5, 8)
    issued = drive(plan)
    finals = [p for p in issued if p.kind == "final"]
    assert [p.lam for p in finals] == [HI]
    assert plan.note is not None and "infeasible" in plan.note
    assert plan.best() is None
    assert len(issued) < 8  # no trial is spent on a plan that cannot change


def test_predicted_infeasible_but_measured_feasible_is_best() -> None:
    plan = planner(1e-3, 5)
    issued = drive(plan, measure=lambda lam: {**measures(lam), "flops": 1.0})
    finals = [p.lam for p in issued if p.kind == "final"]
    assert finals[0] == HI and len(issued) <= 5
    assert plan.best() is not None and plan.best()[0] == min(finals)  # type: ignore[index]


def test_trivially_feasible_trains_the_smallest_lambda() -> None:
    plan = planner(0.95, 8)
    issued = drive(plan)
    assert [p.lam for p in issued if p.kind == "final"] == pytest.approx([LO])
    assert plan.note is not None and "trivially feasible" in plan.note
    best = plan.best()
    assert best is not None and best[0] == pytest.approx(LO)


def test_no_final_meets_then_finals_move_up_while_trials_remain() -> None:
    """Predictions too optimistic (measured FLOPs 1.5x): finals move to larger λ."""
    plan = planner(0.25, 12)
    issued = drive(plan, measure=lambda lam: {**measures(lam), "flops": 1.5 * DENSE * curve(lam)})
    finals = [p.lam for p in issued if p.kind == "final"]
    assert len(finals) >= 3 and all(lam > finals[1] for lam in finals[2:])
    best = plan.best()
    assert best is not None and best[1]["flops"] <= 0.25 * DENSE
    assert boundary(0.25 / 1.5) <= best[0] <= boundary(0.25 / 1.5) * plan.safety


def test_all_finals_meet_then_finals_move_down_while_trials_remain() -> None:
    """Predictions too pessimistic (measured FLOPs 0.6x): finals try smaller λ."""
    plan = planner(0.25, 12)
    issued = drive(plan, measure=lambda lam: {**measures(lam), "flops": 0.6 * DENSE * curve(lam)})
    finals = [p.lam for p in issued if p.kind == "final"]
    assert len(finals) >= 3 and min(finals) < finals[0]
    best = plan.best()
    assert best is not None and best[1]["flops"] <= 0.25 * DENSE
    assert best[0] >= boundary(0.25 / 0.6) * (1 - 1e-9)


def unsettled(lam: float, upto: int) -> list[dict[str, float]]:
    """Curves still falling fast at the probe's end: their last value is far above the
    final, so short probes cannot place the boundary."""
    return [
        {"epoch": e, "expected_flops": DENSE * (0.95 - 0.02 * e * (1 + curve(1 / lam)))}
        for e in range(1, upto + 1)
    ]


@pytest.mark.parametrize("grid", [None, [LO * (HI / LO) ** (i / 15) for i in range(16)]])
@pytest.mark.parametrize("target", [0.5, 0.25, 0.05])
def test_unsettled_probes_hand_over_to_a_measured_bisection(
    grid: list[float] | None, target: float
) -> None:
    plan = planner(target, 10, grid=grid)
    issued: list[Proposal] = []
    while not plan.done:
        batch = list(iter(plan.next, None))
        issued += batch
        for p in batch:
            if p.kind == "probe":
                plan.observe_probe(p.lam, unsettled(p.lam, p.stop_at or EPOCHS))
            else:
                plan.observe_final(p.lam, measures(p.lam))
    assert len(issued) <= 10
    assert plan.note is not None and "unsettled" in plan.note
    assert sum(p.kind == "probe" for p in issued) == 4  # no bisection on unsettled probes
    best = plan.best()
    assert best is not None and best[1]["flops"] <= target * DENSE
    if grid is None:
        assert boundary(target) <= best[0] <= boundary(target) * plan.safety
    else:  # the grid's answer: its smallest λ that meets the bound
        assert best[0] == min(g for g in grid if curve(g) <= target)


def test_a_single_trial_trains_lambda_max() -> None:
    plan = planner(0.25, 1)
    issued = drive(plan)
    assert [(p.kind, p.lam) for p in issued] == [("final", HI)]
    assert plan.note is not None


def test_failures_count_as_trials() -> None:
    plan = planner(0.25, 4)
    first = [plan.next(), plan.next()]
    assert plan.next() is None
    assert all(p is not None for p in first)
    plan.observe_failure(first[0].lam)  # type: ignore[union-attr]
    plan.observe_probe(first[1].lam, [])  # type: ignore[union-attr] # no record: a failure
    rest = drive(plan)
    assert 2 + len(rest) <= 4
    assert plan.done


def test_deterministic() -> None:
    runs = [[(p.kind, p.lam) for p in drive(planner(0.2, 9), noise=0.1)] for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("cut", [0, 2, 4, 5, 6, 7, 8])
def test_restore_continues_the_same_plan(cut: int) -> None:
    whole = planner(0.2, 8)
    reference = drive(whole, noise=0.1)
    assert len(reference) == 8

    finished = [
        FinishedTrial(p.lam, history(p.lam, p.stop_at, noise=0.1))
        if p.stop_at is not None
        else FinishedTrial(p.lam, history(p.lam, EPOCHS), measures(p.lam))
        for p in reference[:cut]
    ]
    restored = planner(0.2, 8)
    restored.restore(finished)
    assert restored.issued == cut
    rest = drive(restored, noise=0.1)
    assert [(p.kind, p.lam) for p in rest] == [(p.kind, p.lam) for p in reference[cut:]]
    assert restored.best() == whole.best()
    assert restored.trial_epochs == whole.trial_epochs


def test_restore_of_a_stopped_probe_and_an_early_stopped_final() -> None:
    plan = planner(0.25, 5)
    stopped_final = {**measures(0.5), "stopped_epoch": 20}
    plan.restore(
        [
            FinishedTrial(LO, history(LO, 5), {**measures(LO), "stopped_epoch": 5}),
            FinishedTrial(0.5, history(0.5, 20), stopped_final),
        ]
    )
    assert [lam for lam, _ in plan.predicted()] == [LO]
    assert plan.best() == (0.5, stopped_final)
    assert plan.trial_epochs == 25


@pytest.mark.parametrize(
    ("kind", "value"), [("max_params", 0.25 * DENSE / 2), ("min_sparsity", 0.75)]
)
def test_params_and_sparsity_use_expected_l0(kind: str, value: float) -> None:
    """Parameters are predicted from expected L0 (half the FLOPs here), not expected FLOPs."""
    dense = DENSE / 2  # dense parameters
    plan = BudgetPlanner(
        kind,  # type: ignore[arg-type]
        value,
        (LO, HI),
        EPOCHS,
        8,
        dense=dense,
        predictor=last_value,
    )

    def measure(lam: float) -> dict[str, float]:
        params = DENSE * curve(lam) / 2
        return {"accuracy": 0.9, "flops": 0.0, "params": params, "sparsity": 1 - params / dense}

    drive(plan, measure=measure)
    best = plan.best()
    assert best is not None and best[0] >= boundary(0.25) * (1 - 1e-9)
    assert best[0] <= boundary(0.25) * plan.safety * 1.05
    assert plan.meets(best[1])


def test_meets() -> None:
    m = {"flops": 10.0, "params": 5, "sparsity": 0.8}
    assert meets("max_flops", 10.0, m) and not meets("max_flops", 9.9, m)
    assert meets("max_params", 5, m) and not meets("max_params", 4, m)
    assert meets("min_sparsity", 0.8, m) and not meets("min_sparsity", 0.81, m)
    assert not meets("max_flops", 1e9, {"flops": float("nan")})
    assert not meets("max_params", 1e9, {})


def test_isotonic_decreasing() -> None:
    assert isotonic_decreasing([3, 2, 1]) == [3, 2, 1]
    assert isotonic_decreasing([1, 2]) == [1.5, 1.5]
    assert isotonic_decreasing([5, 1, 3, 0]) == [5, 2, 2, 0]
    assert isotonic_decreasing([]) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "min_flops"},
        {"value": 0.0},
        {"lam_bounds": (0.0, 1.0)},
        {"lam_bounds": (2.0, 1.0)},
        {"epochs": 0},
        {"n_trials": 0},
        {"kind": "min_sparsity", "value": 1.0},
    ],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "kind": "max_flops",
        "value": 100.0,
        "lam_bounds": (LO, HI),
        "epochs": EPOCHS,
        "n_trials": 5,
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        BudgetPlanner(dense=DENSE, **args)  # type: ignore[arg-type]


def test_probe_curve() -> None:
    """Equal λ averaged, made non-increasing, linear in log λ, ends extended, inverted."""
    probes = [(0.1, 0.8, True), (1.0, 0.4, True), (1.0, 0.2, False), (10.0, 0.35, True)]
    curve = ProbeCurve(probes, math.log(0.32))
    assert [p.lam for p in curve.points] == [0.1, 1.0, 10.0]
    assert [p.settled for p in curve.points] == [True, False, True]
    assert curve.points[1].log_fraction == pytest.approx(curve.points[2].log_fraction)  # pooled
    assert curve.first_meeting == 1
    assert curve(0.1) == pytest.approx(0.8)
    assert curve(math.sqrt(0.1)) == pytest.approx((0.8 + curve(1.0)) / 2)
    assert curve(0.01) > 0.8  # the first segment extended
    x = curve.inverse(0.5, 0.1, 1.0)
    assert curve(math.exp(x)) == pytest.approx(0.5)
    b = curve.boundary()
    assert b is not None and 0.1 < b < 1.0
    assert ProbeCurve([(1.0, 0.5, True)], math.log(0.3))(7.0) == pytest.approx(0.5)
