"""Fixtures of the workers tests: the shared Ray cluster and a fresh database per test."""

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
from tests.service.fixtures import db_url, postgres_url  # noqa: F401
from tests.workers.ray_cluster import shared_cluster
from workers.tune.runner import Runner, RunnerOptions
from workers.tune.store import SweepStore


@pytest.fixture(scope="session")
def ray_cluster() -> Cluster:
    return shared_cluster()


@dataclass
class Sweeps:
    """A runner on its own SQLite database, and a helper to create sweeps in it."""

    store: SweepStore
    runner: Runner
    url: str
    root: Path

    def create(self, **spec: Any) -> int:
        body: dict[str, Any] = {
            "model": {"arch": "mlp", "hidden": [32, 16]},
            "dataset": "synthetic",
            "lambdas": [0.1, 1.0],
            "training": {"epochs": 2, "batch_size": 100},
            "fuse": 1,
        }
        body.update(spec)
        with session_scope(self.store.engine) as session:
            return int(repository.create_sweep(session, SweepSpec.model_validate(body)).id)


@pytest.fixture
def sweeps(tmp_path: Path, ray_cluster: Cluster) -> Iterator[Callable[..., Sweeps]]:
    """``sweeps(url=None, **runner_options)`` -> a :class:`Sweeps` on a fresh database
    (default a SQLite file; pass ``db_url`` to run on each backend)."""
    made: list[Sweeps] = []

    def make(url: str | None = None, **options: Any) -> Sweeps:
        url = url or f"sqlite:///{tmp_path / 'l0sweep.db'}"
        upgrade_database(url)
        store = SweepStore(create_engine_for(url))
        opts = {"storage_path": str(tmp_path / "ray"), "max_failures": 2, **options}
        made.append(Sweeps(store, Runner(store, RunnerOptions(**opts)), url, tmp_path))
        return made[-1]

    yield make
    for s in made:
        s.runner.stop()
        s.store.engine.dispose()
