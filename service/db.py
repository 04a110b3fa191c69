"""Engines, the one session context manager, and Alembic migrations."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from service.errors import InvalidDataError, L0SweepError, StorageError

__all__ = [
    "alembic_config",
    "create_engine_for",
    "downgrade_database",
    "is_transient",
    "migration_transaction",
    "normalise_url",
    "public_url",
    "session_scope",
    "upgrade_database",
    "wait_for_database",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant: serialises concurrent start-up migrations on PostgreSQL.
_MIGRATION_LOCK_ID = 0x10_5EE9
# A PostgreSQL server that does not answer (host down, no RST) must not hang a caller forever:
# a bounded connect, and dead-peer detection on open connections (libpq's TCP keep-alives
# and TCP_USER_TIMEOUT), so a partition that drops packets ends a query with a connection
# error (transient: retried, counted as an outage) within about 30 s instead of leaving it
# waiting on TCP for the kernel's ~15 minutes. A URL that sets any of these keeps its value.
_PG_LIVENESS: dict[str, int] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms
}

# SQLSTATEs worth retrying: class 08 (connection exception) plus these.
_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53300",  # too_many_connections
        "55P03",  # lock_not_available
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
    }
)
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def public_url(url: str) -> str:
    """``url`` without its password: what may be logged, printed or pickled."""
    parsed = make_url(url)
    return URL.create(
        parsed.drivername,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    ).render_as_string(hide_password=False)


def create_engine_for(
    url: str,
    *,
    busy_timeout_ms: int = 30_000,
    echo: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_timeout_s: float | None = None,
) -> Engine:
    """Create an engine for ``url`` with the settings l0sweep relies on.

    SQLite: WAL journal, ``busy_timeout``, foreign keys on, and write transactions opened
    with ``BEGIN IMMEDIATE`` so that concurrent writers wait for the lock instead of failing
    with "database is locked" when a read lock cannot be upgraded. Sessions opened with
    ``session_scope(engine, readonly=True)`` use a plain deferred ``BEGIN`` and never block
    writers. PostgreSQL: psycopg 3, pre-ping, a connect timeout and dead-peer detection (TCP
    keep-alives, ``tcp_user_timeout``) unless the URL sets them.

    ``pool_size``, ``max_overflow`` and ``pool_timeout_s`` (seconds a checkout waits before
    ``sqlalchemy.exc.TimeoutError``) size the connection pool; None keeps SQLAlchemy's
    defaults (5, 10, 30 s). An in-memory SQLite database has no such pool and ignores them.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    pool = {
        k: v
        for k, v in (
            ("pool_size", pool_size),
            ("max_overflow", max_overflow),
            ("pool_timeout", pool_timeout_s),
        )
        if v is not None
    }
    if parsed.get_backend_name() != "sqlite":
        liveness = {k: v for k, v in _PG_LIVENESS.items() if k not in parsed.query}
        return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=liveness, **pool)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        pool = {}  # SingletonThreadPool / StaticPool: one connection, nothing to size
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        **pool,
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


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it wraps) is a database failure worth retrying.

    Transient: the connection refused, reset or lost; the server shutting down or starting
    (PostgreSQL 57P01-57P03, class 08); serialization failures and deadlocks (40001, 40P01);
    too many connections; SQLite's "database is locked". A :class:`StorageError` from
    :func:`session_scope` is judged by the SQLAlchemy error it wraps. Everything else
    (constraint violations, bad SQL, domain errors) is permanent.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _transient_verdict(current)
        if verdict is not None:
            return verdict
        current = current.__cause__ or current.__context__
    return False


def _transient_verdict(exc: BaseException) -> bool | None:
    """True/False when ``exc`` itself decides; None to look at what it wraps."""
    if isinstance(exc, DisconnectionError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or bool(_driver_verdict(exc.orig))
    if isinstance(exc, SQLAlchemyError):
        return None
    return _driver_verdict(exc)


def _driver_verdict(exc: BaseException | None) -> bool | None:
    """The DB-API driver's error: sqlite3 by message, psycopg by SQLSTATE."""
    if isinstance(exc, sqlite3.Error):
        message = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and any(
            m in message for m in _SQLITE_TRANSIENT
        )
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate.startswith("08") or sqlstate in _TRANSIENT_SQLSTATES
    if exc is not None and type(exc).__module__.startswith("psycopg"):
        # No SQLSTATE: a client-side connection failure (refused, reset, closed, or a
        # ConnectionTimeout: no answer within connect_timeout) is an OperationalError or a
        # subclass of it; an InterfaceError or ProgrammingError is our own bug.
        return any(
            c.__name__ == "OperationalError" and c.__module__.startswith("psycopg")
            for c in type(exc).__mro__
        )
    return None


@contextlib.contextmanager
def session_scope(engine: Engine, *, readonly: bool = False) -> Iterator[Session]:
    """The one way to open a database session.

    Commits on success; on an exception rolls back and re-raises it — domain errors
    (:class:`service.errors.L0SweepError`) as they are, values the database refuses
    (``DataError``, ``IntegrityError``) as :class:`service.errors.InvalidDataError`, other
    database errors as :class:`service.errors.StorageError`.

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
    except (DataError, IntegrityError) as exc:
        _rollback_quietly(session)
        raise InvalidDataError(f"{type(exc).__name__}: {exc}") from exc
    except SQLAlchemyError as exc:
        _rollback_quietly(session)
        raise StorageError(f"{type(exc).__name__}: {exc}") from exc
    except BaseException:
        _rollback_quietly(session)
        raise
    finally:
        session.close()


def _rollback_quietly(session: Session) -> None:
    # The connection may be the thing that failed (database gone): the error being raised
    # says what happened, and a second error from the rollback must not replace it.
    try:
        session.rollback()
    except SQLAlchemyError:
        session.invalidate()


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at ``service/migrations`` (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def migration_transaction(conn: Connection) -> Iterator[Connection]:
    """The transaction a migration runs in.

    PostgreSQL: serialised across processes by an advisory lock. SQLite: with foreign keys
    off, as SQLite's own ALTER TABLE procedure asks, because batch migrations rebuild
    tables and dropping the old ``sweeps`` (or ``trials``) would cascade-delete its trials
    (or their epochs and models); the keys are checked before the commit.
    """
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        # Outside any transaction: inside one, SQLite ignores this pragma.
        conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
            yield conn
            if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                raise StorageError("a migration left rows that break a foreign key")
    finally:
        if sqlite:
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def _run_alembic(target: str | Engine, fn: Any, revision: str) -> None:
    engine = create_engine_for(target) if isinstance(target, str) else target
    try:
        with engine.connect() as conn, migration_transaction(conn):
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
