"""Crash: SIGKILL the runner process mid-sweep, start it again; the sweep completes, no
completed trial is trained again, an interrupted trial continues from its checkpoint, and
no row is duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster
from sqlalchemy import func, select

from service import repository
from service.db import create_engine_for, session_scope, upgrade_database
from service.models import Trial, TrialEpoch, TrialModel
from service.spec import SweepSpec
from tests.workers.ray_cluster import WORKER_NODES

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 6


def _runner(address: str, url: str, storage: Path, log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "l0sweep"
    # Each runner process has its own id (host:uuid): the restarted one takes the killed
    # one's sweep over once its heartbeat is this old (default 60 s).
    env = {**os.environ, "L0SWEEP_DATABASE_URL": url, "L0SWEEP_RUNNER_TIMEOUT_S": "5"}
    return subprocess.Popen(
        [str(exe), "runner", "--ray-address", address, "--storage-path", str(storage)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _snapshot(engine: Any, sweep_id: int) -> dict[int, dict[str, Any]]:
    with session_scope(engine, readonly=True) as session:
        out: dict[int, dict[str, Any]] = {}
        for t in repository.list_trials(session, sweep_id).items:
            epochs = repository.list_trial_epochs(session, t.id)
            out[t.id] = {
                "status": t.status,
                "epochs_done": t.epochs_done,
                "started_at": t.started_at,
                "finished_at": t.finished_at,
                "metrics": t.metrics,
                "recorded": {e.epoch: e.recorded_at for e in epochs},
                "resumed_at": {e.epoch: (e.extra or {}).get("resumed_at_epoch") for e in epochs},
            }
        return out


def _sweep_status(engine: Any, sweep_id: int) -> str:
    # A new session per poll: one long read transaction would keep seeing its snapshot.
    with session_scope(engine, readonly=True) as session:
        return str(repository.get_sweep(session, sweep_id).status)


def _wait(condition: Any, timeout_s: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; runner log:\n{log.read_text()[-4000:]}")


def test_runner_killed_mid_sweep_resumes_without_rerunning(
    ray_cluster: Cluster, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'l0sweep.db'}"
    upgrade_database(url)
    engine = create_engine_for(url)
    spec = SweepSpec.model_validate(
        {
            "model": {"arch": "mlp", "hidden": [300, 100]},
            "dataset": "mnist",
            "lambdas": [0.1, 0.3, 1.0, 3.0],
            "training": {"epochs": EPOCHS},
            "fuse": 1,
        }
    )
    with session_scope(engine) as session:
        sweep_id = int(repository.create_sweep(session, spec).id)
    log = tmp_path / "runner.log"
    storage = tmp_path / "ray"

    first = _runner(ray_cluster.address, url, storage, log)
    try:

        def mid_sweep() -> dict[int, dict[str, Any]] | None:
            snap = _snapshot(engine, sweep_id)
            done = [t for t in snap.values() if t["status"] == "completed"]
            # Half-trained: a checkpoint to resume from and epochs still to train.
            partial = [
                t
                for t in snap.values()
                if t["status"] != "completed" and 2 <= t["epochs_done"] < EPOCHS - 1
            ]
            return snap if done and partial else None

        before = _wait(mid_sweep, 300, "one completed and one half-trained trial", log)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = datetime.now().astimezone()

    # Ray notices the dead driver and ends its trials: the CPUs come back.
    _wait(
        lambda: ray.available_resources().get("CPU", 0) >= WORKER_NODES,
        60,
        "Ray to release the killed runner's trials",
        log,
    )
    assert ray.available_resources().get("CPU", 0) >= WORKER_NODES
    assert _sweep_status(engine, sweep_id) == "running"

    second = _runner(ray_cluster.address, url, storage, log)
    try:
        _wait(
            lambda: (
                _snapshot(engine, sweep_id)
                and all(t["status"] == "completed" for t in _snapshot(engine, sweep_id).values())
            ),
            300,
            "the resumed sweep to complete",
            log,
        )
        _wait(lambda: _sweep_status(engine, sweep_id) == "completed", 30, "final status", log)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(60)
        except subprocess.TimeoutExpired:
            second.kill()

    after = _snapshot(engine, sweep_id)
    assert len(after) == len(spec.initial_trials())
    for trial_id, old in before.items():
        new = after[trial_id]
        assert new["status"] == "completed"
        assert sorted(new["recorded"]) == list(range(1, EPOCHS + 1))
        if old["status"] == "completed":
            # Not trained again: same start, same finish, same result, same epoch rows.
            assert new["started_at"] == old["started_at"]
            assert new["finished_at"] == old["finished_at"]
            assert new["metrics"] == old["metrics"]
            assert new["recorded"] == old["recorded"]
        elif 2 <= old["epochs_done"] < EPOCHS - 1:
            # Continued from its checkpoint, not from scratch: the epochs trained after the
            # restart say which checkpoint epoch they started from (the last epoch before
            # the kill may be trained again if the kill fell between result and checkpoint).
            assert new["started_at"] > old["started_at"] and old["started_at"] < killed_at
            resumed = [new["resumed_at"][e] for e in range(old["epochs_done"] + 1, EPOCHS + 1)]
            assert resumed and all(r is not None and r >= old["epochs_done"] - 1 for r in resumed)
            assert all(r >= 1 for r in resumed)
            assert new["resumed_at"][1] == 0

    with session_scope(engine, readonly=True) as session:
        n_trials = session.scalar(
            select(func.count()).select_from(Trial).where(Trial.sweep_id == sweep_id)
        )
        n_epochs = session.scalar(select(func.count()).select_from(TrialEpoch))
        # One TorchScript model per trial, each stored once (every format has its own row).
        n_models = session.scalar(
            select(func.count(func.distinct(TrialModel.trial_id))).where(
                TrialModel.format == "torchscript"
            )
        )
    assert (n_trials, n_epochs, n_models) == (4, 4 * EPOCHS, 4)
    engine.dispose()
