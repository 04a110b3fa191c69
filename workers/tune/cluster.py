"""Connecting to Ray: a local instance (the embedded default) or an existing cluster, and
joining this machine to a cluster as a worker."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence

import ray

__all__ = ["connect_ray", "worker_command"]

log = logging.getLogger(__name__)


def _quiet_ray_env() -> None:
    # Set before ray.init so the local raylet and workers inherit them.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


# Ray turns 127.0.0.1 into the machine's address (so other nodes could join) unless
# multi-node clusters are off, and its servers listen on the node's address: the local
# instance listened on every interface (issue 10). Off, everything binds to loopback.
_MULTI_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _single_node_on_loopback() -> Iterator[None]:
    """While a local instance starts: a single node on 127.0.0.1. Ray reads the switch from
    the environment when it is imported (the processes it starts inherit it) and, in this
    process, from ``ray_constants``; both are restored afterwards."""
    from ray._private import ray_constants

    saved_env = os.environ.get(_MULTI_NODE_ENV)
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_MULTI_NODE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(_MULTI_NODE_ENV, None)
        else:
            os.environ[_MULTI_NODE_ENV] = saved_env


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
        with _single_node_on_loopback():
            ray.init(
                # "local": a new instance, never a `ray start` cluster found on the machine
                address="local",
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
