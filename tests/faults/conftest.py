"""Fixtures of the fault tests (issue 9): the session's shared Ray cluster, a fresh database
per test (SQLite or a PostgreSQL schema), a throwaway PostgreSQL server, and an in-process
runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ray.cluster_utils import Cluster

from service import repository
from service.db import create_engine_for, session_scope, upgrade_database
from service.spec import SweepSpec
from tests.faults.support import PostgresServer
from tests.service.fixtures import db_url, postgres_url  # noqa: F401
from tests.workers.ray_cluster import shared_cluster
from workers.tune.runner import Runner, RunnerOptions
from workers.tune.store import RetryPolicy, SweepStore

#: A short, real sweep on the synthetic dataset: a tiny MLP, trained for real.
BASE_SPEC: dict[str, Any] = {
    "model": {"arch": "mlp", "hidden": [32, 16]},
    "dataset": "synthetic",
    "lambdas": [0.1, 1.0],
    "training": {"epochs": 4, "batch_size": 100},
    "fuse": 1,
}


def make_spec(**overrides: Any) -> SweepSpec:
    return SweepSpec.model_validate({**BASE_SPEC, **overrides})


def create_sweep(engine: Any, **overrides: Any) -> int:
    with session_scope(engine) as session:
        return int(repository.create_sweep(session, make_spec(**overrides)).id)


@pytest.fixture(scope="session")
def ray_cluster() -> Cluster:
    return shared_cluster()


@pytest.fixture
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may stop and start."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@dataclass
class InProcessRunner:
    """A runner in the test process (the Ray Tune driver of the shared cluster)."""

    store: SweepStore
    runner: Runner
    url: str
    storage: Path


@pytest.fixture
def runner_on(tmp_path: Path, ray_cluster: Cluster) -> Iterator[Callable[..., InProcessRunner]]:
    """``runner_on(url, **options)``: a migrated database and a runner on it."""
    made: list[InProcessRunner] = []

    def make(url: str, *, retry: RetryPolicy | None = None, **options: Any) -> InProcessRunner:
        upgrade_database(url)
        store = SweepStore(create_engine_for(url), retry=retry)
        storage = tmp_path / "ray"
        opts = {"storage_path": str(storage), "max_failures": 2, **options}
        made.append(InProcessRunner(store, Runner(store, RunnerOptions(**opts)), url, storage))
        return made[-1]

    yield make
    for r in made:
        r.runner.stop()
        r.store.engine.dispose()
