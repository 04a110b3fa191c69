"""(g) A real multi-node Ray cluster: a head and two worker nodes started as separate
``ray start`` processes (not ``cluster_utils``), and ``l0sweep runner`` joining it as the
driver. The raylet of a worker node with a half-trained trial is SIGKILLed; the sweep
completes on the other node, the lost trial continuing there from its checkpoint.

All nodes listen on 127.0.0.2: loopback, but not an address Ray rewrites to the machine's
outward IP (it does that to 127.0.0.1 in ``ray start --address``). Ray's token
authentication is off for this private cluster (``RAY_AUTH_MODE=disabled``), so a token
file another cluster of this machine wrote is not needed. Network namespaces, which would
make the nodes look like separate machines, are not used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from service.db import create_engine_for, upgrade_database
from tests.faults.conftest import create_sweep
from tests.faults.support import (
    BIN,
    Service,
    assert_each_trial_completed_once,
    free_port,
    snapshot,
    sweep_status,
    wait_for,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.postgres]

# Epochs long enough (batch 10: about 100 steps of the synthetic set) that the kill lands
# mid-training: at batch 50 an epoch took ~70 ms, and the trial could finish all its epochs
# between the test seeing epoch 2 and its worker dying with the raylet (then it resumed at
# the last epoch's checkpoint and only the final step ran on the survivor).
EPOCHS = 24
KILL_BEFORE_EPOCH = 6
NODE_IP = "127.0.0.2"
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    # Multi-node `ray start` on one host (Ray's name for it mentions Windows and OSX).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
    # Notice a dead node within a few seconds rather than the default ~30 s.
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


class RayNodes:
    """Ray nodes as ``ray start --block`` processes of this test; :meth:`close` ends every
    process they started (found through psutil), never anything else."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self._seen: dict[int, float] = {}  # pid -> create_time of every process of ours

    @property
    def address(self) -> str:
        return f"{NODE_IP}:{self.port}"

    def _ports(self) -> list[str]:
        names = (
            "node-manager-port",
            "object-manager-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
            "metrics-export-port",
        )
        return [f"--{name}={free_port()}" for name in names]

    def start(self, name: str, *, head: bool = False) -> None:
        args = [
            str(BIN / "ray"),
            "start",
            "--block",
            f"--node-ip-address={NODE_IP}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            *self._ports(),
        ]
        if head:
            args += ["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false"]
        else:
            args += [f"--address={self.address}", "--num-cpus=1"]
        log = self.root / f"{name}.log"
        self.nodes[name] = subprocess.Popen(
            args,
            env={**os.environ, **RAY_ENV},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # One node at a time: nodes joining at once on one host trip over each other.
        wait_for(lambda: self._up(name, log), 180, f"Ray node {name}", interval_s=0.25, logs=[log])

    def _up(self, name: str, log: Path) -> bool:
        proc = self.nodes[name]
        if proc.poll() is not None:
            pytest.fail(f"ray start {name} exited: {log.read_text()[-3000:]}")
        self._remember()
        return "block forever" in log.read_text(errors="replace") and self.raylet(name) is not None

    def _remember(self) -> None:
        for proc in self.nodes.values():
            try:
                family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
            except psutil.NoSuchProcess:
                continue
            for p in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    self._seen.setdefault(p.pid, p.create_time())

    def raylet(self, name: str) -> psutil.Process | None:
        try:
            children = psutil.Process(self.nodes[name].pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return None
        for child in children:
            try:
                if child.name() == "raylet" and child.status() != psutil.STATUS_ZOMBIE:
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    def node_id(self, name: str) -> str:
        raylet = self.raylet(name)
        assert raylet is not None
        (arg,) = [a for a in raylet.cmdline() if a.startswith("--node_id=")]
        return arg.split("=", 1)[1]

    def close(self) -> None:
        self._remember()
        for pid, created in self._seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created:
                    p.kill()
            except psutil.NoSuchProcess:
                pass
        for proc in self.nodes.values():
            proc.wait(30)


@pytest.fixture
def ray_nodes(tmp_path: Path) -> Iterator[RayNodes]:
    nodes = RayNodes(tmp_path)
    try:
        nodes.start("head", head=True)
        nodes.start("worker-1")
        nodes.start("worker-2")
        yield nodes
    finally:
        nodes.close()


def test_g_a_node_lost_mid_sweep_moves_its_trial_to_the_other_node(
    ray_nodes: RayNodes, postgres_url: str, tmp_path: Path
) -> None:
    upgrade_database(postgres_url)
    engine = create_engine_for(postgres_url)
    sweep_id = create_sweep(
        engine, lambdas=[0.1, 1.0], training={"epochs": EPOCHS, "batch_size": 10}
    )
    node_of = {ray_nodes.node_id(n)[:12]: n for n in ("worker-1", "worker-2")}
    service = Service()
    env = {
        **RAY_ENV,
        "L0SWEEP_DATABASE_URL": postgres_url,
        "L0SWEEP_DATA_DIR": str(tmp_path / "data"),
    }
    service.runner(ray_nodes.address, env, tmp_path / "ray", tmp_path / "runner.log")
    logs = [*service.logs, tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    try:

        def mid_training() -> tuple[int, str] | None:
            # A trial half-trained on a worker node: that node is the one to lose.
            snap = snapshot(engine, sweep_id)
            for trial_id, t in snap.items():
                node = node_of.get((t["node"] or "").rsplit(":", 1)[-1])
                if node and t["status"] == "running" and 2 <= t["epochs_done"] < KILL_BEFORE_EPOCH:
                    return trial_id, node
            return None

        victim_trial, victim_node = wait_for(
            mid_training, 300, "a half-trained trial", logs=logs, alive=service.procs
        )
        raylet = ray_nodes.raylet(victim_node)
        assert raylet is not None
        os.kill(raylet.pid, signal.SIGKILL)
        killed_at = time.monotonic()

        wait_for(
            lambda: sweep_status(engine, sweep_id) == "completed",
            300,
            "completion",
            logs=logs,
            alive=service.procs,
        )
        finished_s = time.monotonic() - killed_at
    finally:
        service.stop_all()

    print(f"node {victim_node} lost; the sweep completed {finished_s:.1f} s later")
    assert_each_trial_completed_once(engine, sweep_id, EPOCHS)
    after = snapshot(engine, sweep_id)
    moved = after[victim_trial]
    survivor = ({"worker-1", "worker-2"} - {victim_node}).pop()
    assert node_of[(moved["node"] or "").rsplit(":", 1)[-1]] == survivor
    # Continued from its checkpoint on the other node, not from scratch.
    assert moved["extra"][EPOCHS]["resumed_at_epoch"] >= 1, moved["extra"][EPOCHS]
    engine.dispose()
