"""trials.weight_decay (migration 0006): every trial row records the weight decay it trains
with; tested on SQLite and PostgreSQL, migrated up and down."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from service import repository as repo
from service.db import create_engine_for, downgrade_database, session_scope, upgrade_database
from tests.service.test_repository import make_spec


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("trials")}


def _weight_decays(engine: Engine, sweep_id: int) -> list[float | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT weight_decay FROM trials WHERE sweep_id = :s ORDER BY number"),
            {"s": sweep_id},
        )
        return [r[0] for r in rows]


def test_grid_trials_record_their_weight_decay(engine: Engine) -> None:
    with session_scope(engine) as s:
        one = repo.create_sweep(s, make_spec(training={"weight_decay": 1e-3})).id
        arms = repo.create_sweep(s, make_spec(seeds=[0], training={"weight_decay": [5e-4, 0]})).id
        optuna = repo.create_sweep(
            s,
            make_spec(
                search={"strategy": "optuna", "n_trials": 2}, lambdas={"min": 0.1, "max": 1.0}
            ),
        ).id
        added = repo.add_trial(s, optuna, 0.2, 0.5, 0)
        own = repo.add_trial(s, optuna, 0.3, 0.5, 0, weight_decay=1e-2)
        assert (added.weight_decay, own.weight_decay) == (5e-4, 1e-2)
    assert _weight_decays(engine, one) == [1e-3] * 8
    assert _weight_decays(engine, arms) == [5e-4, 0.0] * 4


def test_migration_0006_backfills_and_drops_the_column(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        upgrade_database(engine)
        with session_scope(engine) as s:
            scalar = repo.create_sweep(s, make_spec(training={"weight_decay": 2e-3})).id
            arms = repo.create_sweep(
                s, make_spec(seeds=[0], training={"weight_decay": [1e-4, 0]})
            ).id
        downgrade_database(engine, "0005")
        assert "weight_decay" not in _columns(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM trials")).scalar_one() == 16
        upgrade_database(engine, "0006")
        # Filled from each sweep's spec; a list's arms cannot be told apart once dropped: the
        # first value (documented in the migration).
        assert _weight_decays(engine, scalar) == [2e-3] * 8
        assert _weight_decays(engine, arms) == [1e-4] * 8
        downgrade_database(engine, "0005")
        upgrade_database(engine)
        assert "weight_decay" in _columns(engine)
    finally:
        engine.dispose()
