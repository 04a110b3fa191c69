"""Load-test pieces: seed a database, serve it as ``l0sweep serve`` does, hit it in bursts.

Everything stays on loopback and every loop is bounded (a deadline or a fixed count).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from service import repository as repo
from service.db import create_engine_for, session_scope, upgrade_database
from service.spec import SweepSpec

TOKEN = "load-token"
L0SWEEP = str(Path(sys.executable).with_name("l0sweep"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, *, n_sweeps: int = 20, n_trials: int = 200) -> list[int]:
    """``n_sweeps`` MLP sweeps of ``n_trials`` trials each, all completed; their ids."""
    upgrade_database(url)
    engine = create_engine_for(url)
    ids = []
    try:
        for s in range(n_sweeps):
            spec = SweepSpec.model_validate(
                {
                    "name": f"load-{s}",
                    "model": {"arch": "mlp", "hidden": [300, 100]},
                    "dataset": "mnist",
                    "lambdas": {"logspace": [-3, 1, n_trials]},
                    "training": {"epochs": 1},
                }
            )
            with session_scope(engine) as session:
                sweep = repo.create_sweep(session, spec)
                ids.append(sweep.id)
                for i, trial in enumerate(repo.list_trials(session, sweep.id).items):
                    x = i / n_trials
                    repo.record_trial_result(
                        session,
                        trial.id,
                        {
                            "accuracy": 0.99 - 0.2 * x * x,
                            "sparsity": x,
                            "params": round((1 - x) * 266_200),
                            "params_dense": 266_200,
                            "flops": (1 - x) * 532_000 + (i % 7) * 100,
                            "flops_dense": 532_000,
                            "expected_flops": 1.0,
                            "expected_l0": 1.0,
                            "architecture": [784, 300, 100],
                        },
                    )
    finally:
        engine.dispose()
    return ids


@dataclass
class Served:
    """A running ``l0sweep serve --no-runner`` subprocess."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def serve(
    database_url: str, data_dir: Path, *, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """``l0sweep serve --no-runner`` on a free loopback port, until the block ends."""
    for attempt in range(3):
        try:
            served = _start(database_url, data_dir, env or {})
            break
        except PortTaken:
            # Another process took the free port between our probe and serve's bind.
            if attempt == 2:
                raise
    try:
        yield served
    finally:
        _stop(served.process)


class PortTaken(RuntimeError):
    pass


def _start(database_url: str, data_dir: Path, env: dict[str, str]) -> Served:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "serve.log"
    environ = {
        **os.environ,
        "L0SWEEP_DATABASE_URL": database_url,
        "L0SWEEP_API_TOKENS": TOKEN,
        "L0SWEEP_DATA_DIR": str(data_dir),
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [L0SWEEP, "serve", "--no-runner", "--host", "127.0.0.1", "--port", str(port)],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                text = log.read_text()
                if "address already in use" in text:
                    raise PortTaken(text[-500:])
                raise RuntimeError(f"serve exited: {text[-2000:]}")
            try:
                if httpx.get(f"{served.url}/api/v1/healthz", timeout=2).status_code == 200:
                    return served
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    except BaseException:
        _stop(process)
        raise


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@dataclass
class Burst:
    statuses: list[int]  # 0 = no answer (connection error or client timeout)
    latencies: list[float]
    wall_s: float

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def server_errors(self) -> int:
        return sum(1 for s in self.statuses if s >= 500 or s == 0)


async def _get(host: str, port: int, path: str, timeout_s: float) -> tuple[int, float]:
    """One GET on a new connection, timed to the last byte of the body; status 0 when the
    server does not answer within ``timeout_s`` or drops the connection."""
    t0 = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is None:
                await reader.read()
            else:
                await reader.readexactly(length)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        status = 0
    finally:
        if writer is not None:
            writer.close()
    return status, time.perf_counter() - t0


async def _burst(base: str, paths: Sequence[str], timeout_s: float) -> Burst:
    # A hand-written HTTP/1.1 client: httpx spent twice the server's CPU time on a burst,
    # and on two cores the load generator's cost lands in the latencies it measures.
    url = httpx.URL(base)
    host, port = url.host, url.port or 80
    start = asyncio.Event()

    async def one(path: str) -> tuple[int, float]:
        await start.wait()
        return await _get(host, port, path, timeout_s)

    tasks = [asyncio.create_task(one(p)) for p in paths]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    start.set()
    results = await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    return Burst([s for s, _ in results], [t for _, t in results], wall)


def burst(base: str, paths: Sequence[str], *, timeout_s: float = 60.0) -> Burst:
    """GET every path at once (one connection each); statuses and latencies.

    The loop runs on a thread of its own: ``asyncio.run`` refuses to start on a thread that
    already runs a loop (Playwright's sync API leaves one on the main thread while open).
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _burst(base, paths, timeout_s)).result()
