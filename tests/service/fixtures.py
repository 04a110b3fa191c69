"""Database fixtures shared by the service and API tests (and reusable end to end).

Import them into a ``conftest.py``::

    from tests.service.fixtures import db_url, engine, postgres_url  # noqa: F401

``db_url`` is parametrised over ``sqlite`` and ``postgresql``: every test that uses it (or
``engine``) runs on both. Each test gets its own empty database: a SQLite file in
``tmp_path``, or a fresh PostgreSQL schema (dropped afterwards) selected through
``options=-csearch_path=...`` in the URL, so the URL alone is enough for subprocesses.

PostgreSQL comes from ``L0SWEEP_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). When it is unreachable the
PostgreSQL variants are skipped locally and fail when ``CI=true``.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from service.db import create_engine_for, upgrade_database

POSTGRES_URL = os.environ.get(
    "L0SWEEP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@functools.cache
def _postgres_unreachable() -> str | None:
    try:
        with psycopg.connect(_libpq_url(POSTGRES_URL), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES_URL} unreachable: {exc}"
    return None


def require_postgres() -> None:
    """Skip (locally) or fail (``CI=true``) when the test PostgreSQL is unreachable."""
    reason = _postgres_unreachable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema (dropped after the test)."""
    require_postgres()
    schema = f"l0test_{uuid.uuid4().hex[:16]}"
    admin = _libpq_url(POSTGRES_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'l0sweep.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database; the test runs once per backend."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a fresh database migrated to head."""
    upgrade_database(db_url)
    eng = create_engine_for(db_url)
    try:
        yield eng
    finally:
        eng.dispose()
