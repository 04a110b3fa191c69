"""``serve`` and ``runner`` wait for the database at start-up (``L0SWEEP_DB_STARTUP_WAIT_S``)
and, if it does not come, fail with one line: no traceback, no password."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.support import BIN, PostgresServer, Service, free_port, wait_for

pytestmark = [pytest.mark.postgres]


def test_an_unreachable_database_ends_start_up_with_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://l0:pw-Never-Shown@127.0.0.1:{free_port()}/l0sweep"
    env = {
        "L0SWEEP_DATABASE_URL": url,
        "L0SWEEP_DB_STARTUP_WAIT_S": "2",
        "L0SWEEP_DATA_DIR": str(tmp_path),
        "PATH": str(BIN),
    }
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [str(BIN / "l0sweep"), *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for command in (["runner"], ["serve", "--no-runner"])
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 1, output
        assert "unreachable after 2 s" in output and "127.0.0.1" in output
        assert "Traceback" not in output and "pw-Never-Shown" not in output
    assert time.monotonic() - started < 60


def test_serve_waits_for_a_database_that_comes_up_late(tmp_path: Path) -> None:
    server = PostgresServer()
    service = Service()
    try:
        server.stop()
        port = free_port()
        env = {"L0SWEEP_DATABASE_URL": server.url, "L0SWEEP_DATA_DIR": str(tmp_path)}
        api = service.api(env, port, tmp_path / "api.log")
        log = tmp_path / "api.log"
        wait_for(
            lambda: "waiting up to" in log.read_text(),
            60,
            "the wait message",
            logs=[log],
            alive=[api],
        )
        server.start()

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, 60, "the API after the database came up", logs=[log], alive=[api])
    finally:
        service.stop_all()
        server.close()
