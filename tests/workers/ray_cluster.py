"""One Ray cluster for the whole test session: a head with no CPUs and two 1-CPU worker
nodes on this machine (``ray.cluster_utils.Cluster``), loopback only, no dashboard.

Ray is expensive to start on two cores, so every test that needs it (here and in
``tests/e2e``) shares this one; the test process is the Ray Tune driver, and subprocess
runners connect to :func:`shared_cluster`'s address.
"""

from __future__ import annotations

import atexit
import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Keep Ray on loopback: otherwise Ray rewrites 127.0.0.1 in a cluster address to the
# machine's outward IP (Linux default), which this sandbox does not route. Subprocesses
# (e.g. a runner started by a test) inherit the variable.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray
import ray._private.ray_constants as ray_constants
from ray.cluster_utils import Cluster

# Ray may have been imported (reading the variable) before this module.
ray_constants.ENABLE_RAY_CLUSTER = False

__all__ = ["WORKER_NODES", "shared_cluster"]

WORKER_NODES = 2
# Datasets no longer travel through the object store (each worker process loads its own
# from the cache, issue 10); the headroom is for checkpoints and results.
_OBJECT_STORE = 600 * 1024 * 1024
_cluster: Cluster | None = None


def shared_cluster() -> Cluster:
    """Start the cluster on first use and connect this process to it."""
    global _cluster
    if _cluster is None:
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 0,
                "include_dashboard": False,
                "object_store_memory": _OBJECT_STORE,
                "node_ip_address": "127.0.0.1",
            },
        )
        for _ in range(WORKER_NODES):
            cluster.add_node(
                num_cpus=1, object_store_memory=_OBJECT_STORE, node_ip_address="127.0.0.1"
            )
        cluster.wait_for_nodes()
        if ray.is_initialized():  # some earlier test started its own local Ray
            ray.shutdown()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        _cluster = cluster
        atexit.register(_shutdown)
    return _cluster


def _shutdown() -> None:
    global _cluster
    if _cluster is not None:
        ray.shutdown()
        _cluster.shutdown()
        _cluster = None
