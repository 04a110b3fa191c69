"""The driver-side callback's fan-out from Ray trials (packs) to trial rows, on a real
database (SQLite) and hand-made Ray Tune trial stand-ins. Writes go through the callback's
ResultWriter thread: tests flush it before they look."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray import tune

from service import repository
from service.db import create_engine_for, session_scope, upgrade_database
from service.spec import SweepSpec
from workers.tune.callback import PersistResultsCallback, ResumeIndex
from workers.tune.protocol import EPOCH, FINAL, STARTED, Member, model_filename, pack_config
from workers.tune.store import SweepStore

MEASURES = {
    "accuracy": 0.9,
    "error": 0.1,
    "params": 100,
    "params_dense": 400,
    "sparsity": 0.75,
    "flops": 150,
    "flops_dense": 600,
    "expected_flops": 160.0,
    "expected_l0": 110.0,
    "architecture": [5, 4, 3],
}


@pytest.fixture
def store(tmp_path: Path) -> SweepStore:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_database(url)
    return SweepStore(create_engine_for(url))


def _sweep(store: SweepStore, **overrides: Any) -> int:
    body: dict[str, Any] = {
        "model": {"arch": "mlp", "hidden": [5, 4]},
        "dataset": "synthetic",
        "lambdas": [0.1, 1.0, 3.0],
        "training": {"epochs": 2},
    }
    body.update(overrides)
    with session_scope(store.engine) as session:
        return int(repository.create_sweep(session, SweepSpec.model_validate(body)).id)


def _trial(trial_id: str, config: dict[str, Any]) -> Any:
    return SimpleNamespace(
        trial_id=trial_id, config=config, last_result={}, checkpoint=None, num_failures=0
    )


def _callback(store: SweepStore, sweep_id: int, tmp_path: Path) -> PersistResultsCallback:
    return PersistResultsCallback(store, sweep_id, ResumeIndex(store, sweep_id))


def _flushed(cb: PersistResultsCallback) -> None:
    assert cb.writer.flush(timeout_s=30)


def test_a_pack_fans_out_to_its_trial_rows(store: SweepStore, tmp_path: Path) -> None:
    sweep_id = _sweep(store)
    rows = store.trials(sweep_id)
    members = [Member(r.lam, r.beta, r.seed, trial_id=r.id) for r in rows[:2]]
    trial = _trial("ray1", {"pack": pack_config(members)})
    cb = _callback(store, sweep_id, tmp_path)

    cb.on_trial_start(0, [], trial)
    cb.on_trial_result(0, [], trial, {"kind": STARTED, "node": "host:abc"})
    _flushed(cb)
    assert [(t.status, t.id) for t in store.trials(sweep_id)[:2]] == [
        ("running", rows[0].id),
        ("running", rows[1].id),
    ]
    record = {"loss": 1.0, "accuracy": 0.5, "expected_l0": 9.0, "expected_flops": 8.0}
    result = {
        "kind": EPOCH,
        "records": [
            {"member": 0, "epoch": 1, "seconds": 0.1, **record},
            {"member": 1, "epoch": 1, "seconds": 0.2, **record},
        ],
    }
    cb.on_trial_result(0, [], trial, result)
    cb.on_trial_result(0, [], trial, result)  # a resumed pack reports an epoch again
    _flushed(cb)
    with session_scope(store.engine) as session:
        for row in rows[:2]:
            epochs = repository.list_trial_epochs(session, row.id)
            assert [e.epoch for e in epochs] == [1]
            assert repository.get_trial(session, row.id).node == "host:abc"

    # The final checkpoint holds one model file per member.
    final_dir = tmp_path / "final"
    final_dir.mkdir()
    for index in range(2):
        (final_dir / model_filename(index)).write_bytes(f"model-{index}".encode())
    ckpt = tune.Checkpoint.from_directory(str(final_dir))
    trial.last_result = {
        "kind": FINAL,
        "members": [MEASURES, {**MEASURES, "accuracy": 0.8, "error": 0.2}],
    }
    cb.on_checkpoint(0, [], trial, ckpt)
    trial.checkpoint = ckpt
    cb.on_trial_complete(0, [], trial)
    _flushed(cb)

    after = store.trials(sweep_id)
    assert [t.status for t in after] == ["completed", "completed", "pending"]
    assert after[1].metrics is not None and after[1].metrics["accuracy"] == 0.8
    with session_scope(store.engine) as session:
        assert repository.get_trial_model(session, rows[0].id) == b"model-0"
        assert repository.get_trial_model(session, rows[1].id) == b"model-1"
    assert cb.completed == {rows[0].id, rows[1].id}


def test_checkpoints_are_remembered_until_the_pack_completes(
    store: SweepStore, tmp_path: Path
) -> None:
    sweep_id = _sweep(store)
    row = store.trials(sweep_id)[0]
    trial = _trial("ray1", {"pack": pack_config([Member(row.lam, row.beta, row.seed, row.id)])})
    cb = _callback(store, sweep_id, tmp_path)
    trial.last_result = {"kind": EPOCH}
    cb.on_checkpoint(0, [], trial, tune.Checkpoint("/somewhere/checkpoint_000001"))
    cb.on_checkpoint(0, [], trial, tune.Checkpoint("/somewhere/checkpoint_000002"))
    _flushed(cb)
    # Any runner (another process, another host) reads the same index from the database.
    other = SweepStore(create_engine_for(store.engine.url.render_as_string(False)))
    assert ResumeIndex(other, sweep_id).entries() == [([row.id], "/somewhere/checkpoint_000002")]
    # The final result forgets it.
    final_dir = tmp_path / "final"
    final_dir.mkdir()
    (final_dir / model_filename(0)).write_bytes(b"model")
    trial.last_result = {"kind": FINAL, "members": [MEASURES]}
    trial.checkpoint = tune.Checkpoint.from_directory(str(final_dir))
    cb.on_trial_complete(0, [], trial)
    _flushed(cb)
    assert ResumeIndex(other, sweep_id).entries() == []


def test_a_stopped_trial_without_final_result_stores_nothing(
    store: SweepStore, tmp_path: Path
) -> None:
    sweep_id = _sweep(store)
    row = store.trials(sweep_id)[0]
    trial = _trial("ray1", {"pack": pack_config([Member(row.lam, row.beta, row.seed, row.id)])})
    cb = _callback(store, sweep_id, tmp_path)
    cb.on_trial_start(0, [], trial)
    trial.last_result = {"kind": EPOCH}
    cb.on_trial_complete(0, [], trial)
    _flushed(cb)
    assert store.trials(sweep_id)[0].status == "running"
    assert cb.completed == set()


def test_optuna_trials_get_their_row_once(store: SweepStore, tmp_path: Path) -> None:
    sweep_id = _sweep(
        store, search={"strategy": "optuna", "n_trials": 2}, lambdas={"min": 0.1, "max": 1.0}
    )
    assert store.trials(sweep_id) == []
    cb = _callback(store, sweep_id, tmp_path)
    trial = _trial("ray1", {"lam": 0.3, "beta": 0.6, "seed": 0})
    cb.on_trial_start(0, [], trial)
    cb.on_trial_start(0, [], trial)  # restarted after a failure: same row
    cb.on_trial_result(0, [], trial, {"kind": STARTED, "node": "n"})
    _flushed(cb)
    rows = store.trials(sweep_id)
    assert [(r.lam, r.beta, r.seed, r.status) for r in rows] == [(0.3, 0.6, 0, "running")]


def test_errors_after_retries_mark_the_pack_failed(store: SweepStore, tmp_path: Path) -> None:
    sweep_id = _sweep(store)
    rows = store.trials(sweep_id)
    members = [Member(r.lam, r.beta, r.seed, r.id) for r in rows]
    trial = _trial("ray1", {"pack": pack_config(members)})
    error_file = tmp_path / "error.txt"
    error_file.write_text(
        "Failure # 1 (at t)\nOSError: disk\nFailure # 2 (at t)\nRuntimeError: out of memory\n"
    )
    trial.error_file = str(error_file)
    cb = _callback(store, sweep_id, tmp_path)
    cb.on_trial_error(0, [], trial)
    _flushed(cb)
    after = store.trials(sweep_id)
    assert {t.status for t in after} == {"failed"}
    with session_scope(store.engine) as session:
        error = repository.get_trial(session, rows[0].id).error or ""
    assert "RuntimeError: out of memory" in error and "disk" not in error


def test_store_and_index_survive_pickling_without_the_password(
    store: SweepStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray Tune pickles the run config (callbacks and stopper) into the experiment folder.
    import pickle

    sweep_id = _sweep(store)
    url = store.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("L0SWEEP_DATABASE_URL", url)
    cb = pickle.loads(pickle.dumps(_callback(store, sweep_id, tmp_path)))
    assert [t.id for t in cb.store.trials(sweep_id)] == [t.id for t in store.trials(sweep_id)]
    cb.resume_index.remember([1], "/x")
    assert cb.writer.pending == 0  # a fresh, empty writer


def test_a_pickled_store_holds_no_password_and_takes_it_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pickle

    from sqlalchemy.engine import make_url

    url = "postgresql+psycopg://l0:s3cret-Pw@db.example:5432/l0sweep"
    store = SweepStore(create_engine_for(url))
    blob = pickle.dumps(store)
    assert b"s3cret-Pw" not in blob
    monkeypatch.setenv("L0SWEEP_DATABASE_URL", url)
    again = pickle.loads(blob)
    assert make_url(again.engine.url.render_as_string(hide_password=False)).password == "s3cret-Pw"
    # Pointed at another database than the environment's: no password at all.
    monkeypatch.setenv("L0SWEEP_DATABASE_URL", "sqlite:////tmp/other.db")
    assert pickle.loads(blob).engine.url.password is None
