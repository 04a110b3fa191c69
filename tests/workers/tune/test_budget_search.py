"""The budget strategy's Ray Tune searcher, driven by a fake Tune loop (no Ray cluster)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from ray.tune.search import Searcher

from service.spec import GridSearch, SweepSpec
from workers.tune.budget import BudgetPlanner, FinishedTrial
from workers.tune.budget_search import BudgetSearcher, budget_searcher

DENSE = 10_000.0
EPOCHS = 12


def curve(lam: float) -> float:
    return 0.9 / (1.0 + (lam / 0.1) ** 1.2)


def record(lam: float, epoch: int, member: int = 0) -> dict[str, Any]:
    value = DENSE * curve(lam)
    return {
        "member": member,
        "epoch": epoch,
        "loss": 1.0,
        "accuracy": 0.9,
        "expected_l0": value / 2,
        "expected_flops": value,
        "seconds": 0.1,
    }


def final_result(lam: float, stopped_epoch: int | None = None) -> dict[str, Any]:
    flops = DENSE * curve(lam)
    measures = {
        "accuracy": 0.99 - 0.01 * math.log10(lam / 1e-3),
        "sparsity": 1 - flops / DENSE,
        "flops": flops,
        "params": flops / 2,
        "stopped_epoch": stopped_epoch,
    }
    return {"kind": "final", "members": [measures], "accuracy": measures["accuracy"]}


def planner(n_trials: int = 8) -> BudgetPlanner:
    return BudgetPlanner(
        "max_flops",
        0.25 * DENSE,
        (1e-3, 10.0),
        EPOCHS,
        n_trials,
        dense=DENSE,
        predictor=lambda trajectory, epochs: trajectory[-1][1],
    )


class FakeTune:
    """Ray Tune's calls, in its order: suggest until None/FINISHED, then each running trial
    reports its epochs; the result that stops a trial at ``stop_at`` goes to
    ``on_trial_complete`` only (as Tune does when a stopper ends a trial)."""

    def __init__(self, searcher: BudgetSearcher) -> None:
        self.searcher = searcher
        self.configs: dict[str, dict[str, Any]] = {}
        self.finished = False
        self.count = 0

    def suggest_all(self) -> list[str]:
        started: list[str] = []
        while True:
            trial_id = f"t{self.count}"
            config = self.searcher.suggest(trial_id)
            if config == Searcher.FINISHED:
                self.finished = True
                return started
            if config is None:
                return started
            assert isinstance(config, dict)
            self.count += 1
            self.configs[trial_id] = config
            started.append(trial_id)

    def run(self, trial_id: str, *, fail: bool = False) -> None:
        config = self.configs[trial_id]
        lam, stop_at = config["lam"], config["stop_at"]
        last = stop_at or EPOCHS
        self.searcher.on_trial_result(trial_id, {"kind": "started", "node": "n"})
        for epoch in range(1, last + 1):
            result = {"kind": "epoch", "records": [record(lam, epoch)]}
            if stop_at is not None and epoch == stop_at:
                self.searcher.on_trial_complete(trial_id, result)  # the stopper's result
                return
            self.searcher.on_trial_result(trial_id, result)
        if fail:
            self.searcher.on_trial_complete(trial_id, None, error=True)
        else:
            self.searcher.on_trial_complete(trial_id, final_result(lam))


def test_fake_tune_loop_finds_a_feasible_model() -> None:
    searcher = BudgetSearcher(planner(8), beta=0.5, seeds=[3, 4, 5])
    tune = FakeTune(searcher)
    rounds = 0
    while not tune.finished:
        started = tune.suggest_all()
        for trial_id in started:
            tune.run(trial_id)
        rounds += 1
        assert rounds < 20
    assert tune.count <= 8
    configs = [tune.configs[f"t{i}"] for i in range(tune.count)]
    assert all(c["beta"] == 0.5 for c in configs)
    assert [c["seed"] for c in configs] == [[3, 4, 5][i % 3] for i in range(tune.count)]
    probes = [c for c in configs if c["stop_at"] is not None]
    assert probes and all(c["stop_at"] == searcher.planner.probe_epochs for c in probes)
    assert configs[-1]["stop_at"] is None
    best = searcher.best()
    assert best is not None and best[1]["flops"] <= 0.25 * DENSE
    assert searcher.suggest("after") == Searcher.FINISHED


def test_waits_while_probes_are_in_flight() -> None:
    searcher = BudgetSearcher(planner(8), beta=2 / 3, seeds=[0])
    tune = FakeTune(searcher)
    first = tune.suggest_all()
    assert len(first) == 4 and not tune.finished
    assert searcher.suggest("again") is None  # the bisection needs the probes' results
    for trial_id in first:
        tune.run(trial_id)
    assert len(tune.suggest_all()) == 1


def test_only_member_zero_records_and_late_probe_failures() -> None:
    plan = planner(8)
    searcher = BudgetSearcher(plan, beta=2 / 3, seeds=[0])
    tune = FakeTune(searcher)
    first = tune.suggest_all()
    lam = tune.configs[first[0]]["lam"]
    # other members' records are ignored; a probe that errors after some epochs still counts
    searcher.on_trial_result(first[0], {"kind": "epoch", "records": [record(lam, 1, member=1)]})
    searcher.on_trial_result(first[0], {"kind": "epoch", "records": [record(lam, 1)]})
    searcher.on_trial_complete(first[0], None, error=True)
    assert [p for p, _ in plan.predicted()] == [lam]
    # a probe that errors before any epoch is a failure
    searcher.on_trial_complete(first[1], None, error=True)
    assert plan.issued == 4 and len(plan.in_flight) == 2


def test_a_failed_final_is_a_failure_and_unknown_trials_are_ignored() -> None:
    plan = planner(3)
    searcher = BudgetSearcher(plan, beta=2 / 3, seeds=[0])
    tune = FakeTune(searcher)
    for trial_id in tune.suggest_all():
        tune.run(trial_id)
    (final,) = tune.suggest_all()
    assert tune.configs[final]["stop_at"] is None
    tune.run(final, fail=True)
    searcher.on_trial_complete("never-suggested", final_result(1.0))
    assert plan.best() is None
    assert searcher.suggest("next") == Searcher.FINISHED


def test_warm_start_continues_the_plan() -> None:
    reference = BudgetSearcher(planner(8), beta=2 / 3, seeds=[0])
    tune = FakeTune(reference)
    while not tune.finished:
        for trial_id in tune.suggest_all():
            tune.run(trial_id)
    configs = [tune.configs[f"t{i}"] for i in range(tune.count)]

    def finished(config: dict[str, Any]) -> FinishedTrial:
        lam, stop = config["lam"], config["stop_at"]
        history = [record(lam, e) for e in range(1, (stop or EPOCHS) + 1)]
        measures = None if stop else final_result(lam)["members"][0]
        return FinishedTrial(lam, history, measures)

    restored_plan = planner(8)
    restored_plan.restore([finished(c) for c in configs[:5]])
    restored = BudgetSearcher(restored_plan, beta=2 / 3, seeds=[0])
    tune2 = FakeTune(restored)
    tune2.count = 5
    while not tune2.finished:
        for trial_id in tune2.suggest_all():
            tune2.run(trial_id)
    rest = [tune2.configs[f"t{i}"]["lam"] for i in range(5, tune2.count)]
    assert rest == pytest.approx([c["lam"] for c in configs[5:]])
    assert restored.best() == reference.best()


def test_needs_seeds() -> None:
    with pytest.raises(ValueError):
        BudgetSearcher(planner(), beta=2 / 3, seeds=[])


def budget_spec(constraint: dict[str, float], **extra: Any) -> SweepSpec:
    return SweepSpec.model_validate(
        {
            "model": {"arch": "mlp", "hidden": [300, 100]},
            "dataset": "mnist",
            "lambdas": {"min": 0.01, "max": 3.0},
            "betas": [0.5, 0.7],
            "seeds": [7, 8],
            "training": {"epochs": 30},
            "search": {"strategy": "budget", "constraint": constraint, "n_trials": 6},
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("constraint", "dense"),
    [
        ({"max_flops": 1e5}, 532_810.0),
        ({"max_params": 5e4}, 266_610.0),
        ({"min_sparsity": 0.9}, 266_610.0),
    ],
)
def test_budget_searcher_from_a_spec(constraint: dict[str, float], dense: float) -> None:
    searcher = budget_searcher(budget_spec(constraint))
    plan = searcher.planner
    ((kind, value),) = constraint.items()
    assert (plan.kind, plan.value, plan.dense) == (kind, value, dense)
    assert (plan.lo, plan.hi, plan.epochs, plan.n_trials) == (0.01, 3.0, 30, 6)
    assert plan.probe_epochs == 5
    config = searcher.suggest("t0")
    assert config is not None
    assert (config["beta"], config["seed"], config["stop_at"]) == (0.5, 7, 5)
    assert searcher.suggest("t1")["seed"] == 8  # type: ignore[index]


def test_budget_searcher_warm_start_and_wrong_strategy() -> None:
    spec = budget_spec({"max_flops": 1e5})
    done = [FinishedTrial(0.05, [record(0.05, e) for e in range(1, 6)])]
    searcher = budget_searcher(spec, finished=done, predictor=lambda t, e: t[-1][1])
    assert searcher.planner.issued == 1 and searcher.planner.trial_epochs == 5
    grid = spec.model_copy(update={"search": GridSearch(strategy="grid")})
    with pytest.raises(ValueError, match="budget"):
        budget_searcher(grid)


def test_save_writes_nothing(tmp_path: Any) -> None:
    """Tune's experiment checkpoints get no pickle: the database rebuilds the plan."""
    searcher = BudgetSearcher(planner(), beta=2 / 3, seeds=[0])
    searcher.save_to_dir(str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    searcher.restore(str(tmp_path / "x"))
