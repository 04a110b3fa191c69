from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from service import repository as repo
from service.db import create_engine_for, session_scope
from service.errors import (
    ConflictError,
    IdempotencyKeyReusedError,
    InvalidMetricsError,
    NotFoundError,
)
from service.models import Trial, TrialEpoch, TrialModel
from service.spec import SweepSpec


def make_spec(**overrides: Any) -> SweepSpec:
    data: dict[str, Any] = {
        "name": "t",
        "model": {"arch": "mlp", "hidden": [8]},
        "dataset": "synthetic",
        "lambdas": [0.01, 0.1],
        "betas": [0.5, 0.6667],
        "seeds": [0, 1],
    }
    data.update(overrides)
    return SweepSpec.model_validate(data)


def metrics(accuracy: float, sparsity: float, flops: float, **extra: Any) -> dict[str, Any]:
    return {
        "accuracy": accuracy,
        "sparsity": sparsity,
        "params": (1 - sparsity) * 1000,
        "params_dense": 1000,
        "flops": flops,
        "flops_dense": 2000,
        "expected_flops": flops,
        "expected_l0": 10.0,
        "architecture": [3, 2],
        **extra,
    }


def test_create_sweep_stores_grid_trials(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep = repo.create_sweep(s, make_spec())
        sweep_id = sweep.id
    with session_scope(engine) as s:
        sweep = repo.get_sweep(s, sweep_id)
        assert (sweep.status, sweep.n_trials, sweep.strategy) == ("pending", 8, "grid")
        trials = repo.list_trials(s, sweep_id).items
        assert [(t.lam, t.beta, t.seed) for t in trials] == [
            tuple(p)[:3] for p in make_spec().expand_grid()
        ]
        assert {t.weight_decay for t in trials} == {make_spec().training.weight_decay}
        assert [t.number for t in trials] == list(range(8))
        assert repo.sweep_counts(s, sweep_id)["pending"] == 8
        assert repo.sweep_spec(sweep) == make_spec()
        assert sweep.created_at.tzinfo is not None


def test_random_strategy_presamples_deterministically(engine: Engine) -> None:
    spec = make_spec(
        lambdas={"min": 1e-3, "max": 1.0}, search={"strategy": "random", "n_trials": 5}
    )
    with session_scope(engine) as s:
        a = repo.create_sweep(s, spec).id
        b = repo.create_sweep(s, spec).id
    with session_scope(engine) as s:
        ta = [(t.lam, t.beta, t.seed) for t in repo.list_trials(s, a).items]
        tb = [(t.lam, t.beta, t.seed) for t in repo.list_trials(s, b).items]
    assert len(ta) == 5 and ta == tb
    assert all(1e-3 <= lam <= 1.0 for lam, _, _ in ta)
    assert len({lam for lam, _, _ in ta}) == 5


def test_optuna_strategy_adds_trials_up_to_n_trials(engine: Engine) -> None:
    spec = make_spec(
        lambdas={"min": 1e-3, "max": 1.0}, search={"strategy": "optuna", "n_trials": 2}
    )
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, spec).id
    with session_scope(engine) as s:
        assert repo.list_trials(s, sweep_id).total == 0
        t0 = repo.add_trial(s, sweep_id, 0.1, 0.5, 0, pack="p0")
        t1 = repo.add_trial(s, sweep_id, 0.2, 0.5, 0)
        assert (t0.number, t1.number, t0.pack) == (0, 1, "p0")
    with session_scope(engine) as s, pytest.raises(ConflictError):
        repo.add_trial(s, sweep_id, 0.3, 0.5, 0)


def test_idempotency_key_returns_the_same_sweep(engine: Engine) -> None:
    with session_scope(engine) as s:
        first = repo.create_sweep(s, make_spec(), idempotency_key="abc").id
    with session_scope(engine) as s:
        again = repo.create_sweep(s, make_spec(), idempotency_key="abc").id
    assert first == again
    with session_scope(engine) as s, pytest.raises(IdempotencyKeyReusedError):
        repo.create_sweep(s, make_spec(name="other"), idempotency_key="abc")
    with session_scope(engine) as s:
        assert repo.count_sweeps(s) == 1
        assert s.scalar(select(func.count()).select_from(Trial)) == 8


def test_unknown_ids_raise_not_found(engine: Engine) -> None:
    with session_scope(engine) as s:
        for call in (
            lambda: repo.get_sweep(s, 999),
            lambda: repo.get_trial(s, 999),
            lambda: repo.cancel_sweep(s, 999),
            lambda: repo.list_trials(s, 999),
            lambda: repo.get_trial_model(s, 999),
            lambda: repo.pareto_front(s, 999),
            lambda: repo.record_trial_epoch(s, 999, {"epoch": 1}),
        ):
            with pytest.raises(NotFoundError):
                call()


def test_list_sweeps_newest_first_with_pagination(engine: Engine) -> None:
    with session_scope(engine) as s:
        ids = [repo.create_sweep(s, make_spec(name=f"s{i}")).id for i in range(5)]
    with session_scope(engine) as s:
        page = repo.list_sweeps(s, limit=2, offset=1)
        assert page.total == 5
        assert [x.id for x in page.items] == [ids[3], ids[2]]


def test_claim_takes_oldest_pending_once(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = repo.create_sweep(s, make_spec(name="a")).id
        b = repo.create_sweep(s, make_spec(name="b")).id
    with session_scope(engine) as s:
        got = repo.claim_next_pending_sweep(s, runner_id="r1")
        assert got is not None and (got.id, got.status, got.runner_id) == (a, "running", "r1")
        assert got.started_at is not None
    with session_scope(engine) as s:
        got = repo.claim_next_pending_sweep(s, runner_id="r2")
        assert got is not None and got.id == b
        assert repo.claim_next_pending_sweep(s, runner_id="r2") is None
    with session_scope(engine) as s:
        assert [x.id for x in repo.list_resumable_sweeps(s)] == [a, b]
        assert [x.id for x in repo.list_resumable_sweeps(s, runner_id="r2")] == [b]


CLAIMER = """
import json, sys, time
from service.db import create_engine_for, session_scope
from service import repository as repo
engine = create_engine_for(sys.argv[1])
while time.time() < float(sys.argv[3]):
    time.sleep(0.005)
got = []
while True:
    with session_scope(engine) as s:
        sweep = repo.claim_next_pending_sweep(s, runner_id=sys.argv[2])
        if sweep is None:
            break
        got.append(sweep.id)
print(json.dumps(got))
"""


def test_two_processes_never_claim_the_same_sweep(engine: Engine, db_url: str) -> None:
    import time

    n = 60
    with session_scope(engine) as s:
        ids = {repo.create_sweep(s, make_spec(name=f"s{i}", seeds=[0])).id for i in range(n)}
    start = str(time.time() + 2.0)  # both start claiming at the same moment
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, db_url, f"r{i}", start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    a, b = results
    assert not set(a) & set(b)
    assert sorted(a + b) == sorted(ids)


def _complete_all(engine: Engine, sweep_id: int, n_threads: int = 8) -> None:
    with session_scope(engine) as s:
        trial_ids = [t.id for t in repo.list_trials(s, sweep_id).items]
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def work(chunk: list[int]) -> None:
        try:
            barrier.wait()
            for tid in chunk:
                with session_scope(engine) as s:
                    repo.mark_trial_running(s, tid, node="n")
                for epoch in (1, 2):
                    with session_scope(engine) as s:
                        repo.record_trial_epoch(s, tid, {"epoch": epoch, "loss": 1.0 / epoch})
                with session_scope(engine) as s:
                    repo.record_trial_result(
                        s, tid, metrics(0.9, 0.5, 100.0), model_bytes=b"m%d" % tid
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(trial_ids[i::n_threads],)) for i in range(n_threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_eight_threads_record_results_without_lock_errors(engine: Engine) -> None:
    spec = make_spec(lambdas={"logspace": [-3, 0, 8]}, betas=[0.5, 0.6], seeds=[0, 1])
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, spec).id
    _complete_all(engine, sweep_id)
    with session_scope(engine) as s:
        assert repo.sweep_counts(s, sweep_id)["completed"] == 32
        assert s.scalar(select(func.count()).select_from(TrialModel)) == 32
        assert s.scalar(select(func.count()).select_from(TrialEpoch)) == 64
        trials = repo.list_trials(s, sweep_id).items
        assert all(t.epochs_done == 2 and t.node == "n" for t in trials)
        assert all(repo.get_trial_model(s, t.id) == b"m%d" % t.id for t in trials)


def test_recording_the_same_result_twice_leaves_one(engine: Engine) -> None:
    with session_scope(engine) as s:
        tid = repo.list_trials(s, repo.create_sweep(s, make_spec()).id).items[0].id
    for payload in (b"first", b"second"):
        with session_scope(engine) as s:
            repo.record_trial_result(s, tid, metrics(0.9, 0.5, 100.0), payload)
            repo.record_trial_epoch(s, tid, {"epoch": 3, "loss": 0.1, "lr": 0.01})
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(TrialModel)) == 1
        assert s.scalar(select(func.count()).select_from(TrialEpoch)) == 1
        trial = repo.get_trial(s, tid)
        assert trial.status == "completed" and trial.epochs_done == 3
        assert trial.metrics is not None and trial.metrics["error"] == pytest.approx(0.1)
        assert repo.get_trial_model_file(s, tid) == (f"trial-{tid}.pt", b"second")
        (epoch,) = repo.list_trial_epochs(s, tid)
        assert (epoch.loss, epoch.extra) == (0.1, {"lr": 0.01})


def test_result_needs_measures_and_drops_non_finite(engine: Engine) -> None:
    with session_scope(engine) as s:
        tid = repo.list_trials(s, repo.create_sweep(s, make_spec()).id).items[0].id
    with session_scope(engine) as s, pytest.raises(InvalidMetricsError, match="flops"):
        repo.record_trial_result(s, tid, {"accuracy": 0.5, "sparsity": 0.1})
    with session_scope(engine) as s:
        repo.record_trial_result(s, tid, metrics(0.9, 0.5, 100.0, expected_l0=float("nan")))
    with session_scope(engine) as s:
        trial = repo.get_trial(s, tid)
        assert trial.metrics is not None and trial.metrics["expected_l0"] is None


def test_trial_state_transitions(engine: Engine) -> None:
    with session_scope(engine) as s:
        tid = repo.list_trials(s, repo.create_sweep(s, make_spec()).id).items[0].id
    with session_scope(engine) as s:
        assert repo.mark_trial_running(s, tid, node="gpu0").status == "running"
        assert repo.mark_trial_failed(s, tid, "boom").status == "failed"
        assert repo.mark_trial_pending(s, tid).status == "pending"
        repo.record_trial_result(s, tid, metrics(0.9, 0.5, 100.0))
        # A completed trial keeps its result.
        assert repo.mark_trial_failed(s, tid, "late").status == "completed"
        assert repo.mark_trial_pending(s, tid).status == "completed"


def test_a_cancel_between_a_runners_read_and_its_write_sticks(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        tid = repo.list_trials(s, sweep_id).items[0].id
        repo.mark_trial_running(s, tid)
    with session_scope(engine) as s:  # the runner read the trial as running, then:
        repo.cancel_sweep(s, sweep_id)
    with session_scope(engine) as s:  # ... its crash-resume write arrives
        assert repo.mark_trial_pending(s, tid).status == "cancelled"
        assert repo.mark_trial_running(s, tid).status == "cancelled"


def test_cancel_and_finish(engine: Engine) -> None:
    with session_scope(engine) as s:
        a = repo.create_sweep(s, make_spec(name="a")).id
        b = repo.create_sweep(s, make_spec(name="b")).id
    with session_scope(engine) as s:
        tid = repo.list_trials(s, a).items[0].id
        repo.record_trial_result(s, tid, metrics(0.9, 0.5, 100.0))
        sweep = repo.cancel_sweep(s, a)
        assert sweep.status == "cancelled" and sweep.finished_at is not None
        assert repo.sweep_counts(s, a) == {
            "pending": 0,
            "running": 0,
            "completed": 1,
            "failed": 0,
            "cancelled": 7,
            "stopped": 0,
        }
        assert repo.cancel_sweep(s, a).status == "cancelled"  # idempotent
        assert repo.finish_sweep(s, a).status == "cancelled"
    with session_scope(engine) as s:
        for t in repo.list_trials(s, b).items:
            repo.mark_trial_failed(s, t.id, "x")
        assert repo.finish_sweep(s, b).status == "failed"
    with session_scope(engine) as s, pytest.raises(ConflictError):
        repo.cancel_sweep(s, b)


def test_pareto_front_objectives_and_constraints(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
    # (accuracy, sparsity, flops) per trial; the last two are not completed.
    table = [
        (0.95, 0.2, 800.0),
        (0.90, 0.5, 500.0),
        (0.85, 0.8, 200.0),
        (0.80, 0.5, 600.0),  # dominated by the second on all three
        (0.90, 0.5, 500.0),  # duplicate of the second
        (0.70, 0.9, 900.0),
    ]
    with session_scope(engine) as s:
        trials = repo.list_trials(s, sweep_id).items
        for t, row in zip(trials, table, strict=False):
            repo.record_trial_result(s, t.id, metrics(*row))
        repo.mark_trial_failed(s, trials[6].id, "x")
        ids = [t.id for t in trials]
    with session_scope(engine) as s:
        front = repo.pareto_front(s, sweep_id, ["accuracy", "sparsity", "flops"])
        assert [t.id for t in front.items] == [ids[0], ids[1], ids[4], ids[2], ids[5]]
        assert front.directions == ["maximize", "maximize", "minimize"]
        front = repo.pareto_front(s, sweep_id, ["accuracy", "flops"])
        assert {t.id for t in front.items} == {ids[0], ids[1], ids[4], ids[2]}
        # Hand-computed staircase against (1, 1) of the fractions (error, flops/flops_dense):
        # (.05, .4), (.1, .25), (.15, .1) -> strips .05 x .6 + .05 x .75 + .85 x .9.
        expected = 0.05 * 0.6 + 0.05 * 0.75 + 0.85 * 0.9
        assert front.hypervolume == pytest.approx(expected)
        front = repo.pareto_front(
            s, sweep_id, ["accuracy", "sparsity"], {"max_flops": 550.0, "min_accuracy": 0.86}
        )
        assert {t.id for t in front.items} == {ids[1], ids[4]}
        empty = repo.pareto_front(s, sweep_id, ["accuracy", "params"], {"min_accuracy": 0.99})
        assert (empty.items, empty.hypervolume) == ([], 0.0)
        for bad in (["accuracy"], ["accuracy", "speed"], ["flops", "flops"]):
            with pytest.raises(ValueError):
                repo.pareto_front(s, sweep_id, bad)
        with pytest.raises(ValueError):
            repo.pareto_front(s, sweep_id, ["accuracy", "flops"], {"max_speed": 1.0})


@pytest.mark.parametrize("cache_size", [256, 0, None])
def test_pareto_front_follows_new_and_rerecorded_results(
    engine: Engine, cache_size: int | None
) -> None:
    cache = None if cache_size is None else repo.FrontCache(cache_size)
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        ids = [t.id for t in repo.list_trials(s, sweep_id).items]
        repo.record_trial_result(s, ids[0], metrics(0.9, 0.5, 500.0))
        repo.record_trial_result(s, ids[1], metrics(0.8, 0.6, 400.0))

    def front() -> tuple[list[int], float]:
        with session_scope(engine, readonly=True) as s:
            f = repo.pareto_front(s, sweep_id, ["accuracy", "sparsity"], cache=cache)
            return [t.id for t in f.items], f.hypervolume

    first = front()
    assert first[0] == [ids[0], ids[1]]
    assert front() == first  # unchanged data, same answer (from the cache when enabled)
    assert cache is None or len(cache) == min(cache.maxsize, 1)
    # A separate engine stands for the runner process writing a dominating result.
    other = create_engine_for(engine.url.render_as_string(hide_password=False))
    try:
        with session_scope(other) as s:
            repo.record_trial_result(s, ids[2], metrics(0.95, 0.7, 300.0))
        assert front()[0] == [ids[2]]
        with session_scope(other) as s:  # re-recorded with worse measures
            repo.record_trial_result(s, ids[2], metrics(0.5, 0.1, 300.0))
        assert front() == first
    finally:
        other.dispose()


def test_front_cache_keeps_the_most_recently_used() -> None:
    cache = repo.FrontCache(2)
    cache.put(("a",), ((1,), 0.1))
    cache.put(("b",), ((2,), 0.2))
    assert cache.get(("a",)) == ((1,), 0.1)  # "a" is now the most recent
    cache.put(("c",), ((3,), 0.3))
    assert (cache.get(("b",)), len(cache), cache.maxsize) == (None, 2, 2)
    assert cache.get(("a",)) == ((1,), 0.1) and cache.get(("c",)) == ((3,), 0.3)
    off = repo.FrontCache(0)
    off.put(("a",), ((1,), 0.1))
    assert (off.get(("a",)), len(off)) == (None, 0)
    with pytest.raises(ValueError):
        repo.FrontCache(-1)


def test_pareto_front_leaves_out_trials_missing_a_chosen_measure(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
        ids = [t.id for t in repo.list_trials(s, sweep_id).items]
        repo.record_trial_result(s, ids[0], metrics(0.9, 0.5, 500.0))
        repo.record_trial_result(s, ids[1], metrics(0.95, 0.6, 400.0))
    with engine.begin() as conn:  # a measure NULL in the database (the read gives NaN)
        conn.execute(update(Trial).where(Trial.id == ids[1]).values(flops=None))
    with session_scope(engine, readonly=True) as s:
        with_flops = repo.pareto_front(s, sweep_id, ["accuracy", "flops"])
        assert [t.id for t in with_flops.items] == [ids[0]]
        without = repo.pareto_front(s, sweep_id, ["accuracy", "sparsity"])
        assert [t.id for t in without.items] == [ids[1]]
