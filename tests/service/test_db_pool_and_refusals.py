"""service.db under load and bad input (issue 10): a sized pool with a bounded wait, and
values the database refuses told apart from an outage."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, text

from service.db import create_engine_for, is_transient, session_scope, upgrade_database
from service.errors import InvalidDataError, StorageError
from service.models import Sweep
from service.spec import SweepSpec


def test_pool_size_overflow_and_timeout(db_url: str) -> None:
    engine = create_engine_for(db_url, pool_size=2, max_overflow=1, pool_timeout_s=0.3)
    try:
        assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (  # type: ignore[attr-defined]
            2,
            1,
            0.3,
        )
        held = [engine.connect() for _ in range(3)]
        t0 = time.perf_counter()
        with pytest.raises(StorageError) as info, session_scope(engine) as s:
            s.execute(text("SELECT 1"))
        assert time.perf_counter() - t0 < 2.0  # bounded: not SQLAlchemy's 30 s
        assert is_transient(info.value)  # a busy pool is worth retrying
        for conn in held:
            conn.close()
    finally:
        engine.dispose()


def test_in_memory_sqlite_ignores_pool_sizes() -> None:
    engine = create_engine_for("sqlite://", pool_size=2, max_overflow=1, pool_timeout_s=0.3)
    with session_scope(engine) as s:
        assert s.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()


def _sweep(name: str | None) -> Sweep:
    spec = SweepSpec.model_validate(
        {"model": {"arch": "mlp"}, "dataset": "synthetic", "lambdas": [0.1]}
    )
    return Sweep(
        name=name,
        status="pending",
        strategy="grid",
        spec=spec.model_dump(mode="json"),
        spec_hash=spec.fingerprint(),
        n_trials=1,
    )


def test_a_refused_value_is_invalid_data_not_an_outage(engine: Engine) -> None:
    upgrade_database(engine)
    # NOT NULL on both databases (an IntegrityError) ...
    with pytest.raises(InvalidDataError) as info, session_scope(engine) as s:
        s.add(_sweep(None))
    assert not is_transient(info.value)
    if engine.dialect.name == "postgresql":
        # ... and PostgreSQL's refusal of NUL in text (a DataError): once answered 503.
        with pytest.raises(InvalidDataError), session_scope(engine) as s:
            s.add(_sweep("a\x00b"))
    with session_scope(engine, readonly=True) as s:  # the session is usable again
        assert s.execute(text("SELECT count(*) FROM sweeps")).scalar() == 0
