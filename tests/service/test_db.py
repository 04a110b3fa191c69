from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from service import repository as repo
from service.db import (
    create_engine_for,
    downgrade_database,
    is_transient,
    normalise_url,
    session_scope,
    upgrade_database,
)
from service.errors import NotFoundError, StorageError
from service.models import Base, Sweep
from service.vocabulary import SweepStatus, TrialStatus
from tests.service.test_repository import make_spec, metrics

TABLES = {"sweeps", "trials", "trial_epochs", "trial_models"}
# Migration 0004 (issue 9): runner heartbeats and the resume index.
LIVENESS_TABLES = {"runners", "pack_checkpoints"}


def test_migrations_upgrade_from_empty_and_downgrade_back(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        assert set(inspect(engine).get_table_names()) == set()
        upgrade_database(db_url)
        assert set(inspect(engine).get_table_names()) == TABLES | LIVENESS_TABLES | {
            "alembic_version"
        }
        upgrade_database(engine)  # a second start-up is a no-op
        with session_scope(engine) as s:
            repo.create_sweep(s, make_spec())
        downgrade_database(engine)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_database(engine)  # and back up again
        assert set(inspect(engine).get_table_names()) >= TABLES | LIVENESS_TABLES
    finally:
        engine.dispose()


def test_liveness_tables_migrate_both_ways_and_keep_every_row(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        # Rows are written by today's ORM at head, then taken down to the old revision: the
        # ORM maps today's columns (e.g. trials.weight_decay of 0006), not 0003's.
        upgrade_database(engine)
        with session_scope(engine) as s:
            sweep_id = repo.create_sweep(s, make_spec()).id
            repo.claim_next_pending_sweep(s, runner_id="runner@old-host")
        downgrade_database(engine, "0003")
        before = _row_counts(engine)
        upgrade_database(engine, "0004")
        assert set(inspect(engine).get_table_names()) >= LIVENESS_TABLES
        assert _row_counts(engine) == before
        with session_scope(engine) as s:
            repo.record_heartbeat(s, "h:1", host="h", pid=1)
            repo.remember_pack_checkpoint(s, sweep_id, [1, 2], "/ckpt")
            # A sweep claimed before the upgrade has no heartbeat: any runner takes it over.
            taken = repo.take_over_orphaned_sweep(s, runner_id="h:1", timeout_s=60)
            assert taken is not None and taken.id == sweep_id
        downgrade_database(engine, "0003")
        assert not set(inspect(engine).get_table_names()) & LIVENESS_TABLES
        assert _row_counts(engine) == before
        upgrade_database(engine)
        with session_scope(engine, readonly=True) as s:
            assert repo.list_pack_checkpoints(s, sweep_id) == []
    finally:
        engine.dispose()


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def _row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in TABLES
        }


def _check_constraints(engine: Engine) -> set[str]:
    inspector = inspect(engine)
    return {
        str(ck["name"])
        for table in ("sweeps", "trials")
        for ck in inspector.get_check_constraints(table)
    }


def test_status_checks_migrate_both_ways_and_keep_every_row(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        # Trials written at head by today's ORM (see the liveness test), then taken to 0002.
        upgrade_database(engine)
        with session_scope(engine) as s:
            sweep_id = repo.create_sweep(s, make_spec()).id
            trial_id = repo.list_trials(s, sweep_id).items[0].id
            repo.record_trial_epoch(s, trial_id, {"epoch": 1, "loss": 0.5})
            repo.record_trial_result(s, trial_id, metrics(0.9, 0.5, 100.0))
        downgrade_database(engine, "0002")
        with session_scope(engine) as s:
            # The model row as schema 0002 has it (the repository writes the head schema).
            s.execute(
                text(
                    "INSERT INTO trial_models (trial_id, data, filename, size, sha256, created_at)"
                    " VALUES (:t, :d, 'trial.pt', 5, 'x', CURRENT_TIMESTAMP)"
                ),
                {"t": trial_id, "d": b"model"},
            )
        before = _row_counts(engine)
        assert before == {"sweeps": 1, "trials": 8, "trial_epochs": 1, "trial_models": 1}
        assert _check_constraints(engine) == set()
        # On SQLite the batch rebuild of sweeps and trials must not cascade-delete children.
        upgrade_database(engine, "0003")
        assert _row_counts(engine) == before
        assert _check_constraints(engine) == {"ck_sweeps_status", "ck_trials_status"}
        downgrade_database(engine, "0002")
        assert _row_counts(engine) == before
        assert _check_constraints(engine) == set()
        upgrade_database(engine)
        assert _row_counts(engine) == before
        with session_scope(engine, readonly=True) as s:
            assert repo.get_trial_model(s, trial_id) == b"model"
    finally:
        engine.dispose()


def test_models_declare_the_migrated_check_constraints(engine: Engine) -> None:
    declared = {
        str(c.name)
        for table in Base.metadata.sorted_tables
        if table.name in ("sweeps", "trials")  # trial_models' checks: test_model_files.py
        for c in table.constraints
        if isinstance(c, CheckConstraint)
    }
    assert declared == _check_constraints(engine) == {"ck_sweeps_status", "ck_trials_status"}


def test_database_refuses_an_unknown_status(engine: Engine) -> None:
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, make_spec()).id
    # Raw SQL, past the ORM's own check: every vocabulary status is accepted...
    with engine.begin() as conn:
        for status in SweepStatus:
            conn.execute(text("UPDATE sweeps SET status = :s"), {"s": status.value})
        for status in TrialStatus:
            conn.execute(text("UPDATE trials SET status = :s"), {"s": status.value})
    # ...and anything else is refused by the database itself.
    for table in ("sweeps", "trials"):
        for bad in ("done", "PENDING", ""):
            with pytest.raises(IntegrityError), engine.begin() as conn:
                conn.execute(text(f"UPDATE {table} SET status = :s"), {"s": bad})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trials (sweep_id, number, lam, beta, seed, status, epochs_done,"
                " created_at) VALUES (:id, 99, 0.1, 0.5, 0, 'halted', 0, :now)"
            ),
            {"id": sweep_id, "now": "2026-11-27 00:00:00+00:00"},
        )
    # The ORM refuses it before the database would.
    with pytest.raises(StorageError, match="not a valid SweepStatus"), session_scope(engine) as s:
        repo.get_sweep(s, sweep_id).status = "bogus"  # type: ignore[assignment]
        s.flush()


def test_session_scope_commits_and_rolls_back(engine: Engine) -> None:
    with pytest.raises(NotFoundError), session_scope(engine) as s:
        repo.create_sweep(s, make_spec())
        repo.get_sweep(s, 12345)  # a domain error passes through unchanged
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        repo.create_sweep(s, make_spec())
        raise RuntimeError
    with session_scope(engine, readonly=True) as s:
        assert repo.count_sweeps(s) == 0
    with pytest.raises(StorageError), session_scope(engine) as s:
        s.add(Sweep(name="x"))  # NOT NULL columns missing
        s.flush()
    with session_scope(engine) as s:
        repo.create_sweep(s, make_spec())
    with session_scope(engine) as s:
        assert repo.count_sweeps(s) == 1


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: pytest.TempPathFactory) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path}/sub/dir/x.db", busy_timeout_ms=1234)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 1234
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_postgres_connections_detect_a_dead_peer_unless_the_url_says_otherwise(
    postgres_url: str,
) -> None:
    """TCP keep-alives and TCP_USER_TIMEOUT on every connection (a partition that drops
    packets ends a query within about 30 s); a value in the URL wins."""
    engine = create_engine_for(postgres_url + "&keepalives_idle=7")
    try:
        with engine.connect() as conn:
            params = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        engine.dispose()
    assert params["keepalives"] == "1" and params["keepalives_idle"] == "7"
    assert params["keepalives_interval"] == "5" and params["keepalives_count"] == "3"
    assert params["tcp_user_timeout"] == "30000" and params["connect_timeout"] == "10"


def test_plain_postgres_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_readonly_sessions_do_not_block_writers(tmp_path: pytest.TempPathFactory) -> None:
    url = f"sqlite:///{tmp_path}/ro.db"
    upgrade_database(url)
    reader = create_engine_for(url)
    writer = create_engine_for(url, busy_timeout_ms=100)
    try:
        with session_scope(reader, readonly=True) as s:
            repo.count_sweeps(s)  # the read transaction is open while the writer commits
            with session_scope(writer) as w:
                repo.create_sweep(w, make_spec())
        # A write session holds the lock from BEGIN IMMEDIATE: another writer times out.
        with session_scope(reader) as s:
            repo.count_sweeps(s)
            with pytest.raises(StorageError, match="locked"), session_scope(writer) as w:
                repo.create_sweep(w, make_spec())
    finally:
        reader.dispose()
        writer.dispose()


def test_transient_errors_are_told_from_permanent_ones(tmp_path: pytest.TempPathFactory) -> None:
    import sqlite3

    import psycopg
    from sqlalchemy.exc import IntegrityError as SAIntegrityError
    from sqlalchemy.exc import OperationalError

    def wrapped(orig: BaseException, cls: type = OperationalError) -> StorageError:
        # What session_scope raises: a StorageError from SQLAlchemy's wrapper of the driver's.
        error = StorageError("database error")
        error.__cause__ = cls("SELECT 1", {}, orig)
        return error

    transient = [
        wrapped(sqlite3.OperationalError("database is locked")),
        wrapped(psycopg.OperationalError("connection refused")),  # no SQLSTATE
        wrapped(psycopg.errors.AdminShutdown()),
        wrapped(psycopg.errors.SerializationFailure()),
        wrapped(psycopg.errors.DeadlockDetected()),
        wrapped(psycopg.errors.ConnectionFailure()),  # class 08
        wrapped(psycopg.errors.CannotConnectNow()),
    ]
    permanent = [
        wrapped(sqlite3.OperationalError("no such table: sweeps")),
        wrapped(sqlite3.IntegrityError("UNIQUE constraint failed"), SAIntegrityError),
        wrapped(psycopg.errors.UniqueViolation(), SAIntegrityError),
        wrapped(psycopg.errors.UndefinedTable()),
        StorageError("plain"),
        NotFoundError("sweep 1 not found"),
        RuntimeError("database is locked"),  # not a database error at all
    ]
    assert [is_transient(e) for e in transient] == [True] * len(transient)
    assert [is_transient(e) for e in permanent] == [False] * len(permanent)


def test_an_unreachable_postgres_is_a_transient_error() -> None:
    engine = create_engine_for("postgresql+psycopg://postgres@127.0.0.1:1/test")
    try:
        with pytest.raises(StorageError) as caught, session_scope(engine) as s:
            repo.ping(s)
        assert is_transient(caught.value)
    finally:
        engine.dispose()


def test_a_connect_timeout_is_a_transient_error() -> None:
    """A host that does not answer at all (no RST: down, or packets dropped) ends a connect
    in psycopg's ConnectionTimeout, a subclass of OperationalError without a SQLSTATE."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    timeout = psycopg.errors.ConnectionTimeout("connection timeout expired")
    assert is_transient(timeout)
    assert is_transient(OperationalError("SELECT 1", {}, timeout))
    assert not is_transient(psycopg.InterfaceError("the connection is closed by us"))


def _statuses(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {int(i): str(s) for i, s in conn.execute(text("SELECT id, status FROM trials"))}


def _set_status(engine: Engine, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE trials SET status = :s WHERE number = 7"), {"s": status})


def test_stopped_trials_migrate_both_ways_and_keep_every_row(db_url: str) -> None:
    """Migration 0007 (issue 13): status 'stopped' and trials.stopped_epoch; downgrading turns
    stopped trials into completed ones and keeps every row."""
    engine = create_engine_for(db_url)
    try:
        upgrade_database(engine)
        with session_scope(engine) as s:
            sweep_id = repo.create_sweep(s, make_spec()).id
            trials = repo.list_trials(s, sweep_id).items
            stopped, completed = trials[0].id, trials[1].id
            repo.record_trial_epoch(s, stopped, {"epoch": 1, "loss": 0.5})
            repo.record_trial_result(s, stopped, metrics(0.8, 0.6, 90.0, stopped_epoch=3), b"pt")
            repo.record_trial_result(s, completed, metrics(0.9, 0.5, 100.0), b"pt")
            repo.mark_trial_failed(s, trials[2].id, "x")
        with engine.begin() as conn:  # what record_trial_result makes of a stopped result
            conn.execute(
                text("UPDATE trials SET status = 'stopped', stopped_epoch = 3 WHERE id = :i"),
                {"i": stopped},
            )
        before = _row_counts(engine)
        statuses = _statuses(engine)
        assert statuses[stopped] == "stopped"

        downgrade_database(engine, "0006")
        assert _row_counts(engine) == before
        assert "stopped_epoch" not in {c["name"] for c in inspect(engine).get_columns("trials")}
        # Stopped trials are completed ones on the older schema; nothing else changed.
        assert _statuses(engine) == {**statuses, stopped: "completed"}
        with pytest.raises(IntegrityError):
            _set_status(engine, "stopped")
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT metrics FROM trials WHERE id = :i"), {"i": stopped})
            stored = kept.scalar_one()  # a dict on PostgreSQL, JSON text on SQLite
            stored = json.loads(stored) if isinstance(stored, str) else stored
            assert stored["stopped_epoch"] == 3  # the stop epoch survives in the measures

        upgrade_database(engine)
        assert _row_counts(engine) == before
        assert _check_constraints(engine) == {"ck_sweeps_status", "ck_trials_status"}
        _set_status(engine, "stopped")  # the new CHECK constraint accepts it
        _set_status(engine, "pending")
        with pytest.raises(IntegrityError):
            _set_status(engine, "halted")
        with session_scope(engine, readonly=True) as s:
            trial = repo.get_trial(s, stopped)
            assert (trial.status, trial.stopped_epoch) == ("completed", None)
            assert repo.get_trial_model(s, stopped) == b"pt"
            assert len(repo.list_trial_epochs(s, stopped)) == 1
    finally:
        engine.dispose()


def test_trial_stop_at_migrates_both_ways_and_keeps_every_row(db_url: str) -> None:
    """Migration 0008 (issue 13): trials.stop_at, a budget probe's planned last epoch."""
    engine = create_engine_for(db_url)
    try:
        upgrade_database(engine)
        with session_scope(engine) as s:
            spec = make_spec(
                betas=[2 / 3],
                lambdas={"min": 0.01, "max": 1.0},
                search={"strategy": "budget", "constraint": {"min_sparsity": 0.5}, "n_trials": 3},
            )
            sweep_id = repo.create_sweep(s, spec).id
            probe = repo.add_trial(s, sweep_id, 0.1, 2 / 3, 0, stop_at=2).id
        with session_scope(engine, readonly=True) as s:
            assert repo.get_trial(s, probe).stop_at == 2
        before = _row_counts(engine)

        downgrade_database(engine, "0007")
        assert "stop_at" not in {c["name"] for c in inspect(engine).get_columns("trials")}
        assert _row_counts(engine) == before

        upgrade_database(engine)
        assert _row_counts(engine) == before
        with session_scope(engine, readonly=True) as s:
            assert repo.get_trial(s, probe).stop_at is None  # the downgrade dropped the plan
    finally:
        engine.dispose()
