"""Early-stopped trials (status ``stopped``) and a budget sweep's best trial (issue 13), on
SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from service import repository as repo
from service.db import session_scope
from service.errors import InvalidMetricsError
from service.repository.fronts import hypervolume_history
from service.repository.progress import sweep_epoch_progress
from tests.service.test_repository import make_spec, metrics


def test_a_result_with_stopped_epoch_stops_the_trial(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        tid = repo.list_trials(s, sweep_id).items[0].id
        repo.mark_trial_running(s, tid, node="n")
        repo.record_trial_epoch(s, tid, {"epoch": 2})
        trial = repo.record_trial_result(s, tid, metrics(0.8, 0.6, 90.0, stopped_epoch=4))
        assert (trial.status, trial.stopped_epoch, trial.epochs_done) == ("stopped", 4, 4)
        assert trial.metrics is not None and trial.metrics["stopped_epoch"] == 4
        assert (trial.accuracy, trial.flops) == (0.8, 90.0)
    with session_scope(engine) as s:
        # The measures reach the row unchanged through a mapping or a float epoch.
        trial = repo.record_trial_result(s, tid, metrics(0.85, 0.6, 90.0, stopped_epoch=5.0))
        assert (trial.status, trial.stopped_epoch) == ("stopped", 5)
        # A null stopped_epoch (or none) is a completed trial, as before.
        trial = repo.record_trial_result(s, tid, metrics(0.9, 0.6, 90.0, stopped_epoch=None))
        assert (trial.status, trial.stopped_epoch) == ("completed", None)
        trial = repo.record_trial_result(s, tid, metrics(0.9, 0.6, 90.0))
        assert (trial.status, trial.stopped_epoch) == ("completed", None)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True, 2**31])
def test_a_bad_stopped_epoch_is_refused(engine: Engine, bad: Any) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        tid = repo.list_trials(s, sweep_id).items[0].id
        with pytest.raises(InvalidMetricsError, match="stopped_epoch"):
            repo.record_trial_result(s, tid, metrics(0.8, 0.6, 90.0, stopped_epoch=bad))
        assert repo.get_trial(s, tid).status == "pending"


def test_stopped_trials_are_counted_finished_and_kept(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = repo.create_sweep(s, make_spec(name="a")).id
        trials = [t.id for t in repo.list_trials(s, a).items]
        for tid in trials[:2]:
            repo.record_trial_result(s, tid, metrics(0.8, 0.6, 90.0, stopped_epoch=2))
        repo.record_trial_result(s, trials[2], metrics(0.9, 0.5, 100.0))
        repo.mark_trial_running(s, trials[3])
        counts = repo.sweep_counts(s, a)
        assert counts == {
            "pending": 4,
            "running": 1,
            "completed": 1,
            "failed": 0,
            "cancelled": 0,
            "stopped": 2,
        }
        assert repo.sweep_counts_many(s, [a])[a] == counts
        # A stopped trial is never run, retried or failed again.
        assert repo.mark_trial_running(s, trials[0], node="n").status == "stopped"
        assert repo.mark_trial_pending(s, trials[0]).status == "stopped"
        assert repo.mark_trial_failed(s, trials[0], "late").status == "stopped"
        assert repo.list_trials(s, a, status="stopped").total == 2
        # Cancelling cancels the open trials only.
        repo.cancel_sweep(s, a)
        assert repo.sweep_counts(s, a) == {**counts, "pending": 0, "running": 0, "cancelled": 5}
        assert repo.get_trial(s, trials[0]).stopped_epoch == 2


def test_a_sweep_of_stopped_and_failed_trials_completes(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        repo.claim_next_pending_sweep(s, runner_id="r")
        trials = [t.id for t in repo.list_trials(s, sweep_id).items]
        repo.record_trial_result(s, trials[0], metrics(0.8, 0.6, 90.0, stopped_epoch=1))
        for tid in trials[1:]:
            repo.mark_trial_failed(s, tid, "x")
        # Stopped is a success: a result exists, so the sweep completes, not fails.
        assert repo.finish_sweep(s, sweep_id, runner_id="r").status == "completed"


def test_front_and_history_take_stopped_trials(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        trials = [t.id for t in repo.list_trials(s, sweep_id).items]
        repo.record_trial_result(s, trials[0], metrics(0.95, 0.2, 500.0))
        repo.record_trial_result(s, trials[1], metrics(0.8, 0.9, 50.0, stopped_epoch=2))
        dominated = metrics(0.7, 0.8, 60.0, stopped_epoch=2)
        repo.record_trial_result(s, trials[2], dominated)
        repo.record_trial_epoch(s, trials[3], {"epoch": 1})
        repo.mark_trial_failed(s, trials[3], "x")
    cache = repo.FrontCache(8)
    with session_scope(engine, readonly=True) as s:
        front = repo.pareto_front(s, sweep_id, cache=cache)
        assert [(t.id, t.status) for t in front.items] == [
            (trials[0], "completed"),
            (trials[1], "stopped"),
        ]
        history = hypervolume_history(s, sweep_id)
        assert history[-1].completed == 3
        assert history[-1].hypervolume == pytest.approx(front.hypervolume)
    with session_scope(engine) as s:
        # A stopped result bumps results_version like a completed one: no stale cached front.
        repo.record_trial_result(s, trials[4], metrics(0.99, 0.95, 10.0, stopped_epoch=3))
    with session_scope(engine, readonly=True) as s:
        assert [t.id for t in repo.pareto_front(s, sweep_id, cache=cache).items] == [trials[4]]


def test_progress_counts_a_stopped_trial_as_done(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec(training={"epochs": 10})).id
        trials = [t.id for t in repo.list_trials(s, sweep_id).items]
        for epoch in (1, 2, 3):
            repo.record_trial_epoch(s, trials[0], {"epoch": epoch})
            repo.record_trial_epoch(s, trials[1], {"epoch": epoch})
        repo.record_trial_result(s, trials[0], metrics(0.8, 0.6, 90.0, stopped_epoch=3))
        (progress,) = sweep_epoch_progress(s, [sweep_id])
        assert (progress.epochs_done, progress.epochs_total) == (10 + 3, 8 * 10)


# ---------------------------------------------------------------- a budget sweep's best trial


def _budget_sweep(engine: Engine, constraint: dict[str, float], n: int = 8) -> int:
    spec = make_spec(
        lambdas={"min": 1e-3, "max": 1.0},
        betas=[0.5],
        search={"strategy": "budget", "constraint": constraint, "n_trials": n},
    )
    with session_scope(engine) as s:
        sweep = repo.create_sweep(s, spec)
        assert (sweep.strategy, sweep.n_trials) == ("budget", n)
        assert repo.list_trials(s, sweep.id).total == 0  # trials come as the search asks
        return sweep.id


def _add(engine: Engine, sweep_id: int, lam: float, result: dict[str, Any] | None) -> int:
    with session_scope(engine) as s:
        tid = repo.add_trial(s, sweep_id, lam, 0.5, 0).id
        if result is not None:
            repo.record_trial_result(s, tid, result)
        return tid


def _best(engine: Engine, sweep_id: int) -> int | None:
    with session_scope(engine, readonly=True) as s:
        best = repo.best_trial(s, repo.get_sweep(s, sweep_id))
        return None if best is None else best.id


def test_best_is_the_most_accurate_trial_meeting_max_flops(engine: Engine) -> None:
    sweep_id = _budget_sweep(engine, {"max_flops": 100})
    assert _best(engine, sweep_id) is None  # no trial yet
    _add(engine, sweep_id, 0.001, metrics(0.99, 0.1, 900.0))  # too many FLOPs
    _add(engine, sweep_id, 0.002, None)  # pending: no result
    assert _best(engine, sweep_id) is None
    ok = _add(engine, sweep_id, 0.1, metrics(0.90, 0.5, 100.0))  # on the bound: meets it
    assert _best(engine, sweep_id) == ok
    _add(engine, sweep_id, 0.2, metrics(0.93, 0.7, 80.0, stopped_epoch=2))
    assert _best(engine, sweep_id) == ok  # completed trials only (DESIGN §5): not a stopped one
    with session_scope(engine) as s:
        failed = repo.add_trial(s, sweep_id, 0.3, 0.5, 0).id
        repo.record_trial_result(s, failed, metrics(0.97, 0.8, 60.0))
        s.flush()
        # Measures of a trial no longer finished (e.g. re-run) do not count.
        repo.get_trial(s, failed).status = "running"  # type: ignore[assignment]
    assert _best(engine, sweep_id) == ok
    better = _add(engine, sweep_id, 0.4, metrics(0.93, 0.8, 70.0))
    assert _best(engine, sweep_id) == better
    tie = _add(engine, sweep_id, 0.5, metrics(0.93, 0.85, 60.0))  # same accuracy, fewer FLOPs
    assert _best(engine, sweep_id) == tie
    with session_scope(engine, readonly=True) as s:
        best = repo.best_trial(s, repo.get_sweep(s, sweep_id))
        constraint = repo.budget_constraint(repo.get_sweep(s, sweep_id))
        assert best is not None and constraint is not None
        assert constraint.satisfied_by(best.metrics or {})


@pytest.mark.parametrize(
    ("constraint", "rows", "winner"),
    [
        # (accuracy, sparsity, flops); params = (1 - sparsity) * 1000
        ({"max_params": 301}, [(0.95, 0.5, 10.0), (0.9, 0.7, 10.0), (0.8, 0.9, 10.0)], 1),
        ({"max_params": 500}, [(0.95, 0.5, 10.0), (0.9, 0.7, 10.0)], 0),
        ({"min_sparsity": 0.8}, [(0.95, 0.5, 10.0), (0.9, 0.7, 10.0), (0.8, 0.9, 10.0)], 2),
        ({"min_sparsity": 0.7}, [(0.95, 0.5, 10.0), (0.9, 0.7, 10.0), (0.8, 0.9, 10.0)], 1),
        ({"min_sparsity": 0.99}, [(0.95, 0.5, 10.0), (0.9, 0.7, 10.0)], None),
    ],
)
def test_best_under_each_kind_of_constraint(
    engine: Engine,
    constraint: dict[str, float],
    rows: list[tuple[float, float, float]],
    winner: int | None,
) -> None:
    sweep_id = _budget_sweep(engine, constraint)
    ids = [_add(engine, sweep_id, 0.01 * (i + 1), metrics(*row)) for i, row in enumerate(rows)]
    assert _best(engine, sweep_id) == (None if winner is None else ids[winner])


def test_only_budget_sweeps_have_a_best(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep = repo.create_sweep(s, make_spec())
        repo.record_trial_result(
            s, repo.list_trials(s, sweep.id).items[0].id, metrics(0.9, 0.5, 1.0)
        )
        assert repo.budget_constraint(sweep) is None
        assert repo.best_trial(s, sweep) is None
    budget = _budget_sweep(engine, {"max_flops": 1e5})
    other = _add(engine, budget, 0.1, metrics(0.5, 0.5, 1.0))
    with session_scope(engine, readonly=True) as s:
        sweeps = repo.list_sweeps(s).items
        best = repo.best_trials(s, sweeps)
        assert {k: (v.id if v else None) for k, v in best.items()} == {
            sweep.id: None,
            budget: other,
        }
