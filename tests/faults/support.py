"""What the fault tests share: a throwaway PostgreSQL server they may stop, processes of the
real service (``l0sweep runner`` / ``l0sweep serve``), deadlines, and database snapshots.

Nothing here touches the machine's own PostgreSQL server: outages happen to a cluster that
the test made with ``initdb`` in a temporary directory, on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, func, select

from service import repository
from service.db import session_scope
from service.models import Runner, Sweep, Trial, TrialEpoch

T = TypeVar("T")

PG_BIN = Path(os.environ.get("L0SWEEP_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
BIN = Path(sys.executable).parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip locally; in CI a missing prerequisite is a failure, never a silent skip."""
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    condition: Callable[[], T | None],
    timeout_s: float,
    what: str,
    *,
    interval_s: float = 0.2,
    logs: Sequence[Path] = (),
    alive: Sequence[subprocess.Popen[bytes]] = (),
) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` (and the
    tails of ``logs``) at the deadline, or at once when a process of ``alive`` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        dead = [p for p in alive if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}:\n{_tail(p)}" for p in logs)
            why = f"{dead[0].args} exited" if dead else f"timed out after {timeout_s:.0f} s"
            pytest.fail(f"{why} waiting for {what}\n{tails}")
        time.sleep(interval_s)


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"({exc})"


# ---------------------------------------------------------------------- throwaway PostgreSQL


class PostgresServer:
    """A PostgreSQL cluster of the test's own (``initdb`` + ``pg_ctl``), with a password
    (scram-sha-256), on a free loopback port; :meth:`stop` and :meth:`start` make outages.

    As root, the server runs as the ``postgres`` user (PostgreSQL refuses root).
    """

    def __init__(self, password: str = "pw-Xq81-s3cret", user: str = "l0sweep") -> None:
        if not (PG_BIN / "initdb").exists():
            skip_or_fail(f"no PostgreSQL binaries in {PG_BIN}")
        self.password = password
        self.user = user
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="l0sweep-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as_postgres = os.geteuid() == 0
        (self.dir / "pw").write_text(password + "\n")
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.dir / "pw", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            user,
            f"--pwfile={self.dir / 'pw'}",
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        (self.dir / "pw").unlink()
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(PG_BIN / tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}\n{done.stderr}\n{_tail(self.log)}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self) -> None:
        """A fast shutdown: sessions get "terminating connection due to administrator
        command", new connections are refused."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------- service processes


@dataclass
class Service:
    """Processes of the real service started by a test, stopped by :meth:`stop_all`."""

    logs: list[Path] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        self.logs.append(log)
        proc = subprocess.Popen(
            [str(BIN / "l0sweep"), *args],
            env={**os.environ, **env},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def runner(
        self, address: str, env: dict[str, str], storage: Path, log: Path
    ) -> subprocess.Popen[bytes]:
        return self.spawn(
            ["runner", "--ray-address", address, "--storage-path", str(storage)], env, log
        )

    def api(self, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
        return self.spawn(["serve", "--no-runner", "--port", str(port)], env, log)

    def stop_all(self) -> None:
        for proc in self.procs:
            stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """SIGTERM (a runner leaves its sweep resumable), SIGKILL if it does not exit."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# ---------------------------------------------------------------------- what the database holds


def sweep_status(engine: Engine, sweep_id: int) -> str:
    # A new session per poll: one long read transaction would keep seeing its snapshot.
    with session_scope(engine, readonly=True) as session:
        return str(repository.get_sweep(session, sweep_id).status)


def sweep_runner(engine: Engine, sweep_id: int) -> tuple[str, int] | None:
    """(runner id, its pid) of the runner that runs the sweep, once it has one."""
    with session_scope(engine, readonly=True) as session:
        row = session.execute(
            select(Sweep.runner_id, Runner.pid)
            .join(Runner, Runner.id == Sweep.runner_id)
            .where(Sweep.id == sweep_id)
        ).one_or_none()
    return None if row is None else (str(row[0]), int(row[1]))


def snapshot(engine: Engine, sweep_id: int) -> dict[int, dict[str, Any]]:
    """Per trial: status, timestamps, metrics, and its epoch rows (epoch -> recorded_at)."""
    with session_scope(engine, readonly=True) as session:
        out: dict[int, dict[str, Any]] = {}
        for t in repository.list_trials(session, sweep_id).items:
            epochs = repository.list_trial_epochs(session, t.id)
            out[t.id] = {
                "status": str(t.status),
                "epochs_done": t.epochs_done,
                "node": t.node,
                "started_at": t.started_at,
                "finished_at": t.finished_at,
                "metrics": t.metrics,
                "error": t.error,
                "recorded": {e.epoch: e.recorded_at for e in epochs},
                "extra": {e.epoch: e.extra or {} for e in epochs},
            }
        return out


def assert_each_trial_completed_once(engine: Engine, sweep_id: int, epochs: int) -> None:
    """Every trial completed with its measures, exactly one row per (trial, epoch) for
    epochs 1..``epochs`` (no gap, no duplicate), one model per trial."""
    snap = snapshot(engine, sweep_id)
    assert snap
    for trial_id, t in snap.items():
        assert t["status"] == "completed", (trial_id, t["status"], t["error"])
        assert t["metrics"] and "accuracy" in t["metrics"]
        assert sorted(t["recorded"]) == list(range(1, epochs + 1)), (trial_id, t["recorded"])
    with session_scope(engine, readonly=True) as session:
        rows = session.execute(
            select(TrialEpoch.trial_id, TrialEpoch.epoch, func.count())
            .join(Trial, Trial.id == TrialEpoch.trial_id)
            .where(Trial.sweep_id == sweep_id)
            .group_by(TrialEpoch.trial_id, TrialEpoch.epoch)
        ).all()
        assert len(rows) == len(snap) * epochs and all(n == 1 for *_, n in rows)
        for trial_id in snap:
            assert repository.get_trial_model(session, trial_id)


def grep_tree(root: Path, needles: Iterable[str]) -> list[str]:
    """``path: needle`` for every file under ``root`` containing a needle (bytes)."""
    wanted = [n.encode() for n in needles if n]
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # deleted meanwhile (an old checkpoint pruned)
                continue
            hits.extend(f"{path}: {n.decode()}" for n in wanted if n in data)
    return hits
