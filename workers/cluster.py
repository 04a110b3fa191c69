"""Connecting to Ray: a local instance (the embedded default) or an existing cluster, and
joining this machine to a cluster as a worker."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

import ray

__all__ = ["connect_ray", "worker_command"]

log = logging.getLogger(__name__)


def _quiet_ray_env() -> None:
    # Set before ray.init so the local raylet and workers inherit them.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def connect_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    log_to_driver: bool = False,
) -> None:
    """Connect this process (the Ray Tune driver) to Ray.

    Args:
        address: ``host:port`` of a running cluster's head; None starts a local Ray instance
            on this machine (loopback only, no dashboard) that ends with this process.
        num_cpus: CPUs of the local instance (default: all).
        num_gpus: GPUs of the local instance (default: detected).
        log_to_driver: Forward trial stdout/stderr to this process.
    """
    if ray.is_initialized():
        return
    _quiet_ray_env()
    if address:
        ray.init(
            address=address,
            logging_level=logging.WARNING,
            log_to_driver=log_to_driver,
        )
    else:
        ray.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=log_to_driver,
            _node_ip_address="127.0.0.1",
        )
    resources = ray.cluster_resources()
    log.info(
        "ray: %s CPUs, %s GPUs on %d node(s)",
        resources.get("CPU", 0),
        resources.get("GPU", 0),
        len([n for n in ray.nodes() if n.get("Alive")]),
    )


def worker_command(
    address: str,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    node_ip: str | None = None,
    block: bool = True,
) -> list[str]:
    """The ``ray start`` command line that joins this machine to the cluster at ``address``.

    Ray detects the machine's GPUs itself; ``num_gpus`` overrides it (e.g. to leave one free).
    """
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    cmd = [ray_bin, "start", f"--address={address}", "--disable-usage-stats"]
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    if num_gpus is not None:
        cmd.append(f"--num-gpus={num_gpus}")
    if node_ip:
        cmd.append(f"--node-ip-address={node_ip}")
    if block:
        cmd.append("--block")
    return cmd


def run_worker(cmd: Sequence[str]) -> int:
    """Run ``ray start`` in the foreground (``--block``) and return its exit status."""
    _quiet_ray_env()
    return subprocess.call(list(cmd))
