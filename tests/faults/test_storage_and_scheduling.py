"""The real service against a PostgreSQL server with a password: ``l0sweep runner`` (its
environment holds the database password and the API token) on the shared Ray cluster, and
``l0sweep serve --no-runner`` taking sweeps with the token.

(d) While a sweep trains and after it has run, the checkpoint storage holds neither the
    password nor the token; once it has finished, its checkpoints are gone (its models are
    in the database) and Ray Tune's small files stay.
(f) A sweep asking for 64 GPUs per trial, which no node has, ends ``failed`` within a minute
    with a reason naming the resource; a sweep submitted after it completes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from ray.cluster_utils import Cluster

from tests.faults.conftest import BASE_SPEC
from tests.faults.support import PostgresServer, Service, free_port, grep_tree, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.postgres]

TOKEN = "tok-storage-9c4e2b7d1a"


@dataclass
class Stack:
    api: httpx.Client
    storage: Path
    password: str
    service: Service

    def submit(self, **overrides: Any) -> dict[str, Any]:
        response = self.api.post("/sweeps", json={**BASE_SPEC, **overrides})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        response = self.api.get(f"/sweeps/{sweep_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_finished(self, sweep_id: int, timeout_s: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            sweep = self.sweep(sweep_id)
            return sweep if sweep["status"] in ("completed", "failed", "cancelled") else None

        return wait_for(
            finished,
            timeout_s,
            f"sweep {sweep_id} to finish",
            logs=self.service.logs,
            alive=self.service.procs,
        )


@pytest.fixture(scope="module")
def stack(ray_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    server = PostgresServer(password="pw-Zr55-secret-db")
    service = Service()
    env = {
        "L0SWEEP_DATABASE_URL": server.url,
        "L0SWEEP_API_TOKENS": TOKEN,
        "L0SWEEP_DATA_DIR": str(root / "data"),
    }
    storage = root / "ray"
    port = free_port()
    try:
        service.api(env, port, root / "api.log")
        service.runner(ray_cluster.address, env, storage, root / "runner.log")
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )

        def api_up() -> bool:
            try:
                return client.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(api_up, 120, "the API", logs=service.logs, alive=service.procs)
        yield Stack(client, storage, server.password, service)
        client.close()
    finally:
        service.stop_all()
        server.close()


def _checkpoint_states(storage: Path) -> list[Path]:
    return list(storage.rglob("checkpoint_*/pack_state.pt"))


def test_d_storage_holds_no_credentials_and_a_finished_sweeps_checkpoints_go(
    stack: Stack,
) -> None:
    secrets = [stack.password, TOKEN]
    sweep = stack.submit(lambdas=[0.2, 2.0], training={"epochs": 12, "batch_size": 10})
    # While it trains: checkpoints (engine states, pack metadata) on storage...
    wait_for(
        lambda: _checkpoint_states(stack.storage),
        180,
        "a checkpoint on storage",
        logs=stack.service.logs,
        alive=stack.service.procs,
    )
    during = grep_tree(stack.storage, secrets)
    assert stack.wait_finished(sweep["id"], 300)["status"] == "completed"
    files = [p for p in stack.storage.rglob("*") if p.is_file()]
    # ...and after it: Ray Tune's pickles (tuner.pkl with our callbacks), params and logs.
    assert any(p.name == "tuner.pkl" for p in files) and any(p.name == "params.pkl" for p in files)
    # None of them ever held the database password or the API token.
    assert during == [] and grep_tree(stack.storage, secrets) == []
    # A finished sweep's checkpoints are deleted: nothing resumes it, its models are stored.
    assert _checkpoint_states(stack.storage) == []
    assert not [p for p in stack.storage.rglob("checkpoint_*") if p.is_dir()]
    runner_log = next(p for p in stack.service.logs if p.name == "runner.log").read_text()
    assert f"sweep {sweep['id']} is completed: deleted its" in runner_log


def test_f_an_unschedulable_sweep_fails_fast_and_the_next_one_runs(stack: Stack) -> None:
    submitted = time.monotonic()
    greedy = stack.submit(resources={"cpus_per_trial": 1, "gpus_per_trial": 64})
    after = stack.submit(lambdas=[0.5], training={"epochs": 1})
    failed = stack.wait_finished(greedy["id"], 60)
    failed_after_s = time.monotonic() - submitted
    assert failed["status"] == "failed"
    assert "64 GPU" in (failed["error"] or ""), failed
    assert stack.wait_finished(after["id"], 300)["status"] == "completed"
    print(f"64-GPU sweep failed {failed_after_s:.1f} s after it was submitted: {failed['error']}")
