"""(b') A runner cut off from the database that the other runners still reach (a partition
of that runner only; here a TCP proxy between it and PostgreSQL that the test cuts).

It cannot tell this from a database outage, and the other runner takes its sweep over once
its heartbeat is ``L0SWEEP_RUNNER_TIMEOUT_S`` old (5 s). So it stops its trials when it has
not renewed its heartbeat for three quarters of the timeout, however long its outage
tolerance (600 s here): the other runner gets the CPUs and trains the trials from their
checkpoints, and two runners never train the same trials. When the partition heals, the
cut-off runner finds the sweep is no longer its own and drops the results it queued, which
would otherwise overwrite the new runner's epoch rows with a history of its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from service import repository
from service.db import create_engine_for, session_scope, upgrade_database
from tests.faults.conftest import create_sweep
from tests.faults.proxy import TcpProxy
from tests.faults.support import Service, snapshot, sweep_runner, sweep_status, wait_for
from tests.workers.ray_cluster import WORKER_NODES

pytestmark = [pytest.mark.ray, pytest.mark.slow]

#: Long trials (batch 10 on the synthetic set, ~0.3 s an epoch): a runner that kept
#: training through the partition would hold both CPUs for about a minute.
EPOCHS = 200
TIMEOUT_S = 5.0
#: How soon after the cut the other runner must be training: the lease (3.75 s), the
#: takeover (5 s), stopping and restoring the trials, and slack for a loaded machine.
TRAINING_AGAIN_S = 40.0


def _resumed_at(row: dict[str, Any]) -> int:
    return int(row.get("resumed_at_epoch", 0))


def test_b_a_partitioned_runner_stops_its_trials_and_drops_its_stale_writes(
    ray_cluster: Cluster, postgres_url: str, tmp_path: Path
) -> None:
    upgrade_database(postgres_url)
    engine = create_engine_for(postgres_url)
    sweep_id = create_sweep(
        engine, lambdas=[0.1, 1.0], training={"epochs": EPOCHS, "batch_size": 10}
    )
    env = {
        "L0SWEEP_RUNNER_TIMEOUT_S": str(TIMEOUT_S),
        "L0SWEEP_DB_OUTAGE_TOLERANCE_S": "600",
        "L0SWEEP_DATA_DIR": str(tmp_path / "data"),
    }
    service = Service()
    storage = tmp_path / "ray"
    logs = service.logs
    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        proxied = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}", 1)
        assert proxied != postgres_url
        cut_off = service.runner(
            ray_cluster.address,
            {**env, "L0SWEEP_DATABASE_URL": proxied},
            storage,
            tmp_path / "cut-off.log",
        )
        try:
            owner_id, _ = wait_for(
                lambda: sweep_runner(engine, sweep_id), 120, "a claim", logs=logs, alive=[cut_off]
            )
            other = service.runner(
                ray_cluster.address,
                {**env, "L0SWEEP_DATABASE_URL": postgres_url},
                storage,
                tmp_path / "other.log",
            )
            alive = [cut_off, other]
            wait_for(
                lambda: (
                    (s := snapshot(engine, sweep_id))
                    and all(t["epochs_done"] >= 3 for t in s.values())
                ),
                180,
                "both trials to train a few epochs",
                logs=logs,
                alive=alive,
            )
            proxy.cut()
            cut_at = time.monotonic()
            time.sleep(1.0)  # a write in flight at the cut has landed or failed by now
            at_cut = {i: t["epochs_done"] for i, t in snapshot(engine, sweep_id).items()}

            def taken_over() -> str | None:
                owner = sweep_runner(engine, sweep_id)
                return owner[0] if owner and owner[0] != owner_id else None

            wait_for(taken_over, TIMEOUT_S + 30, "the takeover", logs=logs, alive=alive)

            def training_again() -> bool:
                # The other runner's rows: epochs past the cut, resumed from a checkpoint.
                snap = snapshot(engine, sweep_id)
                return all(t["epochs_done"] >= at_cut[i] + 2 for i, t in snap.items())

            wait_for(
                training_again,
                TRAINING_AGAIN_S,
                "the other runner to train the trials (the cut-off one still holds the CPUs?)",
                logs=logs,
                alive=alive,
            )
            training_again_s = time.monotonic() - cut_at

            proxy.heal()
            wait_for(
                lambda: "no longer this runner's" in (tmp_path / "cut-off.log").read_text(),
                60,
                "the cut-off runner to drop its queued writes",
                logs=logs,
                alive=alive,
            )
            with session_scope(engine) as session:
                repository.cancel_sweep(session, sweep_id)  # enough seen: end it
            wait_for(
                lambda: ray.available_resources().get("CPU", 0) >= WORKER_NODES,
                60,
                "free CPUs",
                logs=logs,
                alive=alive,
            )
            assert cut_off.poll() is None and other.poll() is None
        finally:
            service.stop_all()

    print(f"the other runner trained again {training_again_s:.1f} s after the cut")
    log = (tmp_path / "cut-off.log").read_text()
    assert "heartbeat not renewed" in log and "stopping this runner's trials" in log
    assert sweep_status(engine, sweep_id) == "cancelled"
    # Every epoch row past the cut is the other runner's, resumed from the checkpoint the
    # index pointed at (still on storage, though the cut-off runner's trials had trained on
    # past it): none of the cut-off runner's queued rows was written over them.
    for trial_id, trial in snapshot(engine, sweep_id).items():
        later = [row for e, row in trial["extra"].items() if e > at_cut[trial_id]]
        assert later, trial_id
        assert all(_resumed_at(row) >= 1 for row in later), (trial_id, trial["extra"])
        assert not any("checkpoints_refused" in row for row in later), trial["extra"]
    engine.dispose()
