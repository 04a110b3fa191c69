"""Engines, the one session context manager, and Alembic migrations."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service.errors import L0SweepError, StorageError

__all__ = [
    "alembic_config",
    "create_engine_for",
    "downgrade_database",
    "normalise_url",
    "session_scope",
    "upgrade_database",
    "wait_for_database",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant: serialises concurrent start-up migrations on PostgreSQL.
_MIGRATION_LOCK_ID = 0x10_5EE9


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_engine_for(url: str, *, busy_timeout_ms: int = 30_000, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with the settings l0sweep relies on.

    SQLite: WAL journal, ``busy_timeout``, foreign keys on, and write transactions opened
    with ``BEGIN IMMEDIATE`` so that concurrent writers wait for the lock instead of failing
    with "database is locked" when a read lock cannot be upgraded. Sessions opened with
    ``session_scope(engine, readonly=True)`` use a plain deferred ``BEGIN`` and never block
    writers. PostgreSQL: psycopg 3, pre-ping.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, emit BEGIN (needed for SAVEPOINT and IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql("BEGIN" if mode == "DEFERRED" else "BEGIN IMMEDIATE")

    return engine


@contextlib.contextmanager
def session_scope(engine: Engine, *, readonly: bool = False) -> Iterator[Session]:
    """The one way to open a database session.

    Commits on success; on an exception rolls back and re-raises it — domain errors
    (:class:`service.errors.L0SweepError`) as they are, database errors as
    :class:`service.errors.StorageError`.

    Args:
        engine: From :func:`create_engine_for`.
        readonly: A read-only unit of work (on SQLite: a deferred transaction that does not
            take the write lock).
    """
    bind = engine.execution_options(sqlite_begin="DEFERRED") if readonly else engine
    session = Session(bind=bind, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except L0SweepError:
        session.rollback()
        raise
    except SQLAlchemyError as exc:
        session.rollback()
        raise StorageError(f"{type(exc).__name__}: {exc}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at ``service/migrations`` (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def _run_alembic(target: str | Engine, fn: Any, revision: str) -> None:
    engine = create_engine_for(target) if isinstance(target, str) else target
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            fn(cfg, revision)
    finally:
        if isinstance(target, str):
            engine.dispose()


def upgrade_database(target: str | Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision`` (default: head)."""
    _run_alembic(target, command.upgrade, revision)


def downgrade_database(target: str | Engine, revision: str = "base") -> None:
    """Revert Alembic migrations down to ``revision`` (default: base, an empty database)."""
    _run_alembic(target, command.downgrade, revision)


def wait_for_database(engine: Engine, *, timeout_s: float = 30.0, interval_s: float = 0.5) -> None:
    """Block until the database answers ``SELECT 1`` (start-up), or raise after timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except SQLAlchemyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(interval_s)
