from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from service import repository as repo
from service.db import (
    create_engine_for,
    downgrade_database,
    normalise_url,
    session_scope,
    upgrade_database,
)
from service.errors import NotFoundError, StorageError
from service.models import Base, Sweep
from tests.service.test_repository import make_spec

TABLES = {"sweeps", "trials", "trial_epochs", "trial_models"}


def test_migrations_upgrade_from_empty_and_downgrade_back(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        assert set(inspect(engine).get_table_names()) == set()
        upgrade_database(db_url)
        assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
        upgrade_database(engine)  # a second start-up is a no-op
        with session_scope(engine) as s:
            repo.create_sweep(s, make_spec())
        downgrade_database(engine)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_database(engine)  # and back up again
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


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
