"""The served app, configured from the environment, as users run it: ``uvicorn api.main:app``
or ``uvicorn --factory api.main:create_served_app``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import spec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(
    env: dict[str, str], target: tuple[str, ...] = ("api.main:app",)
) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *target, "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"uvicorn did not start: {proc.communicate()[0]}")


def test_uvicorn_app_from_env_migrates_and_serves(db_url: str, tmp_path: Path) -> None:
    proc, base = _serve(
        {
            "L0SWEEP_DATABASE_URL": db_url,
            "L0SWEEP_API_TOKENS": "t1,t2",
            "L0SWEEP_DATA_DIR": str(tmp_path),
        }
    )
    try:
        r = httpx.post(f"{base}/api/v1/sweeps", json=spec(), headers={"Authorization": "Bearer t2"})
        assert r.status_code == 201, r.text
        assert httpx.get(f"{base}/api/v1/sweeps").json()["total"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_embedded_default_generates_and_prints_a_token(tmp_path: Path) -> None:
    env = {"L0SWEEP_DATA_DIR": str(tmp_path), "L0SWEEP_API_TOKENS": ""}
    factory = ("--factory", "api.main:create_served_app")
    proc, base = _serve({**env, "L0SWEEP_DATABASE_URL": ""}, factory)
    try:
        token = (tmp_path / "api_token").read_text().strip()
        assert (tmp_path / "l0sweep.db").exists()  # the default SQLite file in data_dir
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{base}/api/v1/sweeps", json=spec(), headers=headers).status_code == 201
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert token in out


NO_WORK_AT_IMPORT = """
import gc, sys
from pathlib import Path
from fastapi.testclient import TestClient
import api.main
from service.settings import Settings

data = Path(sys.argv[1])
assert "app" not in vars(api.main) and not data.exists(), "import built the app"
settings = Settings(database_url=f"sqlite:///{data / 'x.db'}", api_tokens=["t"], data_dir=data)
with TestClient(api.main.create_app(settings)) as client:
    assert client.get("/api/v1/healthz").status_code == 200
assert gc.get_freeze_count() == 0, "create_app froze the collector"
with TestClient(api.main.create_app(settings, freeze_gc=True)):
    assert gc.get_freeze_count() > 0, "the served app did not freeze the collector"
"""


def test_import_builds_nothing_and_only_the_served_app_freezes_gc(tmp_path: Path) -> None:
    # In a subprocess: gc.freeze() would otherwise reach this test process.
    data_dir = tmp_path / "data"
    env = {**os.environ, "L0SWEEP_DATA_DIR": str(data_dir), "L0SWEEP_DATABASE_URL": ""}
    done = subprocess.run(
        [sys.executable, "-c", NO_WORK_AT_IMPORT, str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
