"""A long-lived ``l0sweep serve`` does not grow with the number of sweeps it has run.

Before the fix every sweep's dataset went into Ray's object store through
``tune.with_parameters`` and stayed there: about 215 MB of shared memory per MNIST sweep,
released only when the process exited. The footprint measured here is what the leak grew:
the ``serve`` process's resident memory plus the machine's shared memory (Ray's object
store lives in shared memory pages that no longer have a name under ``/dev/shm``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

TOKEN = "memory-token"
SWEEPS = 10
WARM_UP = 2  # sweeps run before the baseline: first imports, the dataset cache, Tune's setup
LIMIT_MB = 40.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shmem_mb() -> float:
    """The machine's shared memory (tmpfs and shmem pages, named or not), in MB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Shmem:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Shmem line in /proc/meminfo")


def _footprint_mb(pid: int) -> tuple[float, float]:
    return psutil.Process(pid).memory_info().rss / 2**20, _shmem_mb()


def _wait_until(condition, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _spec(i: int) -> dict[str, object]:
    return {
        "name": f"memory-{i}",
        "model": {"arch": "mlp", "hidden": [32]},
        "dataset": "mnist",
        "lambdas": [0.1],
        "training": {"epochs": 1, "batch_size": 500},
        "fuse": 1,
    }


def test_serve_footprint_is_flat_across_sweeps(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "L0SWEEP_DATA_DIR": str(tmp_path / "data"),
        "L0SWEEP_API_TOKENS": TOKEN,
        "L0SWEEP_ENVIRONMENT": "dev",
    }
    env.pop("L0SWEEP_DATABASE_URL", None)
    log = (tmp_path / "serve.log").open("w")
    cmd = [sys.executable, "-m", "workers.cli", "serve", "--port", str(port), "--num-cpus", "1"]
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/v1"
    samples: list[tuple[float, float]] = []
    try:
        with httpx.Client(base_url=url, timeout=30) as client:

            def healthy() -> bool:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            _wait_until(healthy, 120, "the server to start")
            auth = {"Authorization": f"Bearer {TOKEN}"}
            for i in range(SWEEPS):
                created = client.post("/sweeps", json=_spec(i), headers=auth)
                assert created.status_code == 201, created.text
                sweep_id = created.json()["id"]

                def finished(sweep_id: int = sweep_id) -> str | None:
                    status = client.get(f"/sweeps/{sweep_id}").json()["status"]
                    return status if status in ("completed", "failed", "cancelled") else None

                status = _wait_until(finished, 240, f"sweep {sweep_id}")
                assert status == "completed", (tmp_path / "serve.log").read_text()[-3000:]
                samples.append(_footprint_mb(server.pid))
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    rss = [s[0] for s in samples]
    shm = [s[1] for s in samples]
    growth = (rss[-1] + shm[-1]) - (rss[WARM_UP - 1] + shm[WARM_UP - 1])
    print(
        f"serve RSS after each sweep (MB): {[round(x) for x in rss]}; "
        f"machine Shmem (MB): {[round(x) for x in shm]}; growth over sweeps "
        f"{WARM_UP + 1}-{SWEEPS}: {growth:.1f} MB"
    )
    assert growth < LIMIT_MB, (rss, shm)
