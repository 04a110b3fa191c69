"""Pareto early stopping and the budget search through the runner on a real Ray cluster
(issue 13), on SQLite and PostgreSQL: stopped trials keep a usable model at their stop
epoch and sit on the front marked as such; cancel and resume leave them as they are."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

import l0models
from service import repository
from service.db import session_scope
from service.repository.best import best_trial
from service.spec import SweepSpec
from tests.workers.conftest import Sweeps
from workers.tune.rungs import rung_epochs
from workers.tune.runner import Runner

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 4
ES = {"kind": "pareto", "grace_epochs": 1, "reduction_factor": 2}
LAMBDAS = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]


def _es_sweep(s: Sweeps, **extra: Any) -> int:
    body: dict[str, Any] = {
        "lambdas": LAMBDAS,
        "seeds": [0, 1],
        "training": {"epochs": EPOCHS, "batch_size": 100},
        "early_stopping": ES,
    }
    body.update(extra)
    return s.create(**body)


def _epochs_of(s: Sweeps, trial_id: int) -> list[int]:
    with session_scope(s.store.engine, readonly=True) as session:
        return [e.epoch for e in repository.list_trial_epochs(session, trial_id)]


def _stopped_model_reproduces_its_accuracy(s: Sweeps, trial_id: int, stored: float) -> None:
    with session_scope(s.store.engine) as session:
        blob = repository.get_trial_model(session, trial_id)
    assert blob is not None
    data = l0models.load_dataset("synthetic")
    path = s.root / f"stopped-{trial_id}.pt"
    path.write_bytes(blob if isinstance(blob, bytes) else blob.data)
    model = torch.jit.load(str(path)).eval()
    x = l0models.measures.as_float_images(data.x_test)
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == data.y_test).double().mean())
    assert abs(accuracy - stored) <= 2 / len(data.y_test), (accuracy, stored)


@pytest.mark.parametrize("fuse", [1, 4])
def test_pareto_early_stopping_stops_dominated_trials_with_usable_models(
    sweeps: Callable[..., Sweeps], db_url: str, fuse: int
) -> None:
    if fuse == 4 and "postgresql" in db_url:
        pytest.skip("fused packs: one backend is enough (the database path is the same)")
    s = sweeps(url=db_url)
    sweep_id = _es_sweep(s, fuse=fuse)
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "completed"

    rows = s.store.trials(sweep_id)
    statuses = [r.status for r in rows]
    assert set(statuses) <= {"completed", "stopped"}, statuses
    stopped = [r for r in rows if r.status == "stopped"]
    assert stopped, "with 16 trials and eta=2 some trial must rank out at a rung"
    assert any(r.status == "completed" for r in rows)
    rungs = rung_epochs(1, 2, EPOCHS)
    with session_scope(s.store.engine, readonly=True) as session:
        stop_epochs = {r.id: repository.get_trial(session, r.id).stopped_epoch for r in stopped}
    for row in stopped:
        epoch = stop_epochs[row.id]
        assert epoch in rungs
        assert row.metrics is not None and row.metrics["stopped_epoch"] == epoch
        # Nothing trained past the stop: its history ends there.
        assert _epochs_of(s, row.id) == list(range(1, epoch + 1))
    with session_scope(s.store.engine, readonly=True) as session:
        front = repository.pareto_front(session, sweep_id)
        # Stopped trials are candidates like completed ones (the API marks them).
        assert {t.status for t in front.items} <= {"completed", "stopped"}
        assert len(front.items) >= 1
    first = stopped[0]
    assert first.metrics is not None
    _stopped_model_reproduces_its_accuracy(s, first.id, float(first.metrics["accuracy"]))


def _run_until(s: Sweeps, sweep_id: int, ready: Callable[[list[Any]], bool]) -> threading.Thread:
    thread = threading.Thread(target=s.runner.run_next)
    thread.start()
    deadline = time.monotonic() + 180
    while not ready(s.store.trials(sweep_id)):
        assert time.monotonic() < deadline, [r.status for r in s.store.trials(sweep_id)]
        time.sleep(0.2)
    return thread


def test_cancel_and_resume_keep_stopped_trials(sweeps: Callable[..., Sweeps], db_url: str) -> None:
    s = sweeps(url=db_url)
    # Long enough that the runner is interrupted while later trials still train.
    sweep_id = _es_sweep(s, training={"epochs": 40, "batch_size": 20})
    thread = _run_until(s, sweep_id, lambda rows: any(r.status == "stopped" for r in rows))
    s.runner.stop()  # a runner restart: the sweep stays running for the next runner
    thread.join(120)
    assert not thread.is_alive()
    before = {r.id: (r.status, r.epochs_done) for r in s.store.trials(sweep_id)}
    stopped = {i for i, (status, _) in before.items() if status == "stopped"}
    assert stopped

    # The next runner resumes: stopped trials are finished, never trained again.
    resumed = Runner(s.store, s.runner.options)
    thread = threading.Thread(target=resumed.resume_interrupted)
    thread.start()
    deadline = time.monotonic() + 180
    # The resumed runner trains on: some trial gets past where the first runner left it.
    while not any(r.epochs_done > before[r.id][1] for r in s.store.trials(sweep_id)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with session_scope(s.store.engine) as session:
        repository.cancel_sweep(session, sweep_id)
    thread.join(120)
    assert not thread.is_alive()
    after = {r.id: (r.status, r.epochs_done) for r in s.store.trials(sweep_id)}
    for trial_id in stopped:
        assert after[trial_id] == before[trial_id]
    assert {status for status, _ in after.values()} <= {"stopped", "completed", "cancelled"}
    assert s.store.sweep_status(sweep_id) == "cancelled"
    resumed.stop()


def test_budget_search_ends_on_the_feasible_side(
    sweeps: Callable[..., Sweeps], db_url: str
) -> None:
    s = sweeps(url=db_url)
    body = {
        "model": {"arch": "mlp", "hidden": [32, 16]},
        "dataset": "synthetic",
        "lambdas": [0.01, 3.0],
    }
    dense_flops = SweepSpec.model_validate(body).model_size().flops
    limit = 0.25 * dense_flops
    sweep_id = s.create(
        lambdas=body["lambdas"],
        search={"strategy": "budget", "constraint": {"max_flops": limit}, "n_trials": 5},
        # A learning rate at which the gates move within 6 epochs of the synthetic set:
        # lambda 0.1 keeps ~75 % of the FLOPs, lambda 1 ~6 %.
        training={"epochs": 6, "batch_size": 50, "lr": 0.02},
        fuse="auto",
    )
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "completed"
    rows = s.store.trials(sweep_id)
    assert 3 <= len(rows) <= 5, [
        (r.lam, r.status, r.epochs_done, r.stop_at, r.metrics and r.metrics.get("flops"))
        for r in rows
    ]
    assert all(r.status in ("completed", "stopped") for r in rows)
    with session_scope(s.store.engine) as session:
        best = best_trial(session, repository.get_sweep(session, sweep_id))
        assert best is not None, [(r.lam, r.status, r.metrics) for r in rows]
        best_flops, best_accuracy = best.flops, best.accuracy
    assert best_flops is not None and best_flops <= limit
    # It is the most accurate of the completed trials that meet the budget (probes stop).
    feasible = [
        float(r.metrics["accuracy"])
        for r in rows
        if r.status == "completed" and r.metrics and r.metrics["flops"] <= limit
    ]
    assert best_accuracy == max(feasible)


def test_early_stopping_works_with_the_optuna_strategy(sweeps: Callable[..., Sweeps]) -> None:
    s = sweeps()
    sweep_id = _es_sweep(
        s,
        lambdas={"min": 0.003, "max": 10.0},
        seeds=[0],
        search={"strategy": "optuna", "n_trials": 8, "sampler": "nsga2"},
    )
    outcome = s.runner.run_next()
    assert outcome is not None and outcome.status == "completed"
    rows = s.store.trials(sweep_id)
    assert len(rows) == 8
    assert {r.status for r in rows} <= {"completed", "stopped"}
    # Optuna trials get their rows when they start: the board keys them by Ray trial id.
    assert any(r.status == "stopped" for r in rows), [(r.lam, r.status) for r in rows]
