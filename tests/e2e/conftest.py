"""End-to-end fixtures: the session's shared Ray cluster (see tests/workers/ray_cluster.py)."""

from __future__ import annotations

import pytest
from ray.cluster_utils import Cluster

from tests.workers.ray_cluster import shared_cluster


@pytest.fixture(scope="session")
def ray_cluster() -> Cluster:
    return shared_cluster()
