"""Slow clients against a real ``l0sweep serve`` (issue 10).

Before the fix, connections holding partial headers stayed open as long as their clients
liked: 350 of them kept 350 file descriptors for a minute. Now a request's headers and body
must arrive within ``L0SWEEP_SERVER_READ_TIMEOUT_S``, and a normal request is answered
within 2 s while 100 stalled connections wait.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.load.harness import serve

pytestmark = pytest.mark.slow

STALLED = 100
READ_TIMEOUT_S = 2.0


def _open_stalled(url: str, n: int, payload: bytes) -> list[socket.socket]:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    sockets = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(payload)
        sockets.append(s)
    return sockets


def _closed_by_server(s: socket.socket, deadline: float) -> bytes | None:
    """What the server sent before closing, or None if it still holds the connection."""
    received = b""
    while True:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def test_stalled_connections_neither_block_others_nor_stay_open(
    tmp_path: Path, db_url: str
) -> None:
    env = {"L0SWEEP_SERVER_READ_TIMEOUT_S": str(READ_TIMEOUT_S)}
    with serve(db_url, tmp_path / "data", env=env) as served:
        server = psutil.Process(served.process.pid)
        fds_before = server.num_fds()
        partial_headers = b"GET /api/v1/sweeps HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        stalled = _open_stalled(served.url, STALLED, partial_headers)
        partial_body = (
            b"POST /api/v1/sweeps HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json"
            b'\r\ncontent-length: 1000\r\nauthorization: Bearer load-token\r\n\r\n{"name":'
        )
        stalled += _open_stalled(served.url, 5, partial_body)
        opened = time.monotonic()
        try:
            accepted = time.monotonic() + 5  # the server accepts them from its backlog
            while server.num_fds() < fds_before + STALLED:
                assert time.monotonic() < accepted, server.num_fds()
                time.sleep(0.05)
            t0 = time.perf_counter()
            r = httpx.get(f"{served.url}/api/v1/sweeps", timeout=10, trust_env=False)
            normal_s = time.perf_counter() - t0
            assert r.status_code == 200
            assert normal_s < 2.0
            # Every stalled connection is closed once its read timeout has passed; those
            # without complete headers are told why.
            deadline = opened + READ_TIMEOUT_S + 5
            answers = [_closed_by_server(s, deadline) for s in stalled]
            closed_s = time.monotonic() - opened
            assert all(a is not None for a in answers), "a stalled connection stayed open"
            print(
                f"{STALLED} stalled + 5 slow-body connections: a normal read in {normal_s:.3f} s;"
                f" all closed {closed_s:.1f} s after opening (read timeout {READ_TIMEOUT_S} s)"
            )
            assert all(a.startswith(b"HTTP/1.1 408") for a in answers[:STALLED])  # type: ignore[union-attr]
        finally:
            for s in stalled:
                s.close()
        # The descriptors are given back.
        fds_deadline = time.monotonic() + 5
        while server.num_fds() > fds_before + 5:
            assert time.monotonic() < fds_deadline, server.num_fds()
            time.sleep(0.1)
        assert httpx.get(f"{served.url}/api/v1/healthz", trust_env=False).status_code == 200


def test_oversized_headers_are_refused(tmp_path: Path) -> None:
    with serve(f"sqlite:///{tmp_path / 'l0sweep.db'}", tmp_path / "data") as served:
        host, port = httpx.URL(served.url).host, httpx.URL(served.url).port
        with socket.create_connection((host, port), timeout=5) as s:
            # 100 KiB of headers, over the 64 KiB limit: 40 KiB in the server's first read,
            # then 60 KiB. The first read's bytes count too (they once did not: such a
            # request waited for the read deadline instead of getting a 431).
            line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
            try:
                s.sendall(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n" + line * 40)
                time.sleep(0.5)
                s.sendall(line * 60)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = _closed_by_server(s, time.monotonic() + 5)
        assert answer is not None and answer.startswith(b"HTTP/1.1 431")
        assert httpx.get(f"{served.url}/api/v1/healthz", trust_env=False).status_code == 200
