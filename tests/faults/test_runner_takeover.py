"""(b) Two runner processes (``l0sweep runner``) wait for work; the one that claims the sweep
is SIGKILLed in the middle of it. The other takes the sweep over once the dead runner's
heartbeat is ``L0SWEEP_RUNNER_TIMEOUT_S`` old (5 s here), resumes its unfinished trials from
their checkpoints (the resume index is in the database) and completes it; nothing that had
completed is trained again."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from service.db import create_engine_for, upgrade_database
from tests.faults.conftest import create_sweep
from tests.faults.support import (
    Service,
    assert_each_trial_completed_once,
    snapshot,
    sweep_runner,
    sweep_status,
    wait_for,
)
from tests.workers.ray_cluster import WORKER_NODES

pytestmark = [pytest.mark.ray, pytest.mark.slow]

#: Long enough epochs (batch 10 on the synthetic set, ~0.3 s each) that the victim is seen
#: with one trial completed and another half-trained before it finishes the sweep.
EPOCHS = 12
TIMEOUT_S = 5.0


def test_b_a_killed_runners_sweep_is_taken_over_and_nothing_completed_reruns(
    ray_cluster: Cluster, db_url: str, tmp_path: Path
) -> None:
    upgrade_database(db_url)
    engine = create_engine_for(db_url)
    sweep_id = create_sweep(
        engine, lambdas=[0.1, 0.3, 1.0], training={"epochs": EPOCHS, "batch_size": 10}
    )
    env = {
        "L0SWEEP_DATABASE_URL": db_url,
        "L0SWEEP_RUNNER_TIMEOUT_S": str(TIMEOUT_S),
        "L0SWEEP_DATA_DIR": str(tmp_path / "data"),
    }
    service = Service()
    storage = tmp_path / "ray"
    procs = [
        service.runner(ray_cluster.address, env, storage, tmp_path / f"runner-{i}.log")
        for i in range(2)
    ]
    logs = service.logs
    try:
        owner_id, owner_pid = wait_for(
            lambda: sweep_runner(engine, sweep_id), 120, "a claim", logs=logs, alive=procs
        )
        (victim,) = [p for p in procs if p.pid == owner_pid]
        (survivor,) = [p for p in procs if p is not victim]

        def mid_sweep() -> dict[int, dict[str, Any]] | None:
            snap = snapshot(engine, sweep_id)
            done = [t for t in snap.values() if t["status"] == "completed"]
            partial = [
                t
                for t in snap.values()
                if t["status"] != "completed" and 2 <= t["epochs_done"] < EPOCHS - 1
            ]
            if done and partial:
                return snap
            if sweep_status(engine, sweep_id) == "completed":
                pytest.fail(f"the sweep completed before it could be interrupted: {snap}")
            return None

        before = wait_for(
            mid_sweep, 300, "a completed and a half-trained trial", logs=logs, alive=procs
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        killed_at = time.monotonic()

        def taken_over() -> str | None:
            owner = sweep_runner(engine, sweep_id)
            return owner[0] if owner and owner[0] != owner_id else None

        new_owner = wait_for(
            taken_over, TIMEOUT_S + 60, "the takeover", interval_s=0.1, logs=logs, alive=[survivor]
        )
        takeover_s = time.monotonic() - killed_at
        wait_for(
            lambda: sweep_status(engine, sweep_id) == "completed",
            300,
            "completion",
            logs=logs,
            alive=[survivor],
        )
        assert survivor.poll() is None
    finally:
        service.stop_all()

    print(f"takeover {takeover_s:.1f} s after the SIGKILL (timeout {TIMEOUT_S:.0f} s)")
    assert takeover_s <= TIMEOUT_S + 10
    assert new_owner != owner_id
    after = snapshot(engine, sweep_id)
    assert_each_trial_completed_once(engine, sweep_id, EPOCHS)
    for trial_id, old in before.items():
        new = after[trial_id]
        if old["status"] == "completed":
            # Not trained again: same start, finish, result and epoch rows.
            for key in ("started_at", "finished_at", "metrics", "recorded"):
                assert new[key] == old[key], (trial_id, key)
        elif 2 <= old["epochs_done"] < EPOCHS - 1:
            # Continued from a checkpoint of the killed runner's run, not from scratch.
            resumed = new["extra"][EPOCHS]["resumed_at_epoch"]
            assert resumed >= 1, new["extra"]
    # The killed driver's trials were ended by Ray: its CPUs are back.
    wait_for(lambda: ray.available_resources().get("CPU", 0) >= WORKER_NODES, 60, "free CPUs")
    engine.dispose()
