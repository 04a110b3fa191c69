"""How many trial configurations one Ray trial trains (the pack size K) and what it reserves.

``fuse: auto`` measures the pack size at which fusing pays on the trials' device
(``l0models.auto_pack_size``); when the driver has no GPU but the trials do (the compose
runner), a Ray task on a GPU worker measures it there.
"""

from __future__ import annotations

import logging
from typing import Any

import ray

from l0models import is_fusable
from service.spec import OptunaSearch, SweepSpec
from workers.tune import spec_adapter
from workers.tune.protocol import TrainJob
from workers.tune.search import resolve_pack_size

__all__ = ["pack_size", "probe_pack_size_on_worker", "trial_resources", "unschedulable_reason"]

log = logging.getLogger(__name__)


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """What one Ray trial (one pack) reserves: the spec's per-trial CPUs and GPUs.

    Fractional GPUs (e.g. 0.25) let Ray place several trials on one GPU; Ray then points
    each trial's ``CUDA_VISIBLE_DEVICES`` at its GPU.
    """
    return {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}


def unschedulable_reason(
    resources: dict[str, float], nodes: list[dict[str, float]] | None = None
) -> str | None:
    """Why no node of the cluster can ever run one trial asking ``resources``, or None.

    Ray keeps such a trial pending forever (it only warns that the request is infeasible),
    which would hold up the sweep and every sweep queued behind it. Judged on the alive
    nodes' total resources (default: ``ray.nodes()``); a cluster that autoscales is judged
    on the nodes it has now.
    """
    if nodes is None:
        nodes = [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": float(resources.get("cpu", 0)), "GPU": float(resources.get("gpu", 0))}
    need = {name: amount for name, amount in need.items() if amount > 0}
    if any(all(node.get(k, 0.0) >= v for k, v in need.items()) for node in nodes):
        return None
    most = {k: max((node.get(k, 0.0) for node in nodes), default=0.0) for k in need}
    short = [k for k, v in need.items() if most[k] < v] or list(need)
    parts = ", ".join(f"{need[k]:g} {k}" for k in short)
    largest = ", ".join(f"{most[k]:g} {k}" for k in short)
    return (
        f"infeasible resources: one trial asks {parts} but no node of the Ray cluster "
        f"has that many (the most on one node: {largest}; {len(nodes)} node(s))"
    )


def pack_size(job: TrainJob, n_members: int) -> int:
    """K for the ``n_members`` configurations of ``job`` still to run on this cluster."""
    spec = job.spec
    config = spec_adapter.arch_config(spec, job.data)
    auto_size, slots = 1, 1
    if spec.fuse == "auto" and not isinstance(spec.search, OptunaSearch) and is_fusable(config):
        resources = trial_resources(spec)
        cluster = ray.cluster_resources()
        if resources["gpu"] > 0:
            slots = int(cluster.get("GPU", 0) // resources["gpu"])
        else:
            slots = int(cluster.get("CPU", 0) // resources["cpu"])
        auto_size = spec_adapter.auto_pack_size(spec, job.data)
        if resources["gpu"] > 0 and auto_size == 1 and slots > 0:
            # The driver often has no GPU (the compose runner): ask a GPU worker instead.
            auto_size = probe_pack_size_on_worker(job, resources)
    return resolve_pack_size(
        spec, config=config, n_members=n_members, slots=max(1, slots), auto_size=auto_size
    )


def probe_pack_size_on_worker(
    job: TrainJob, resources: dict[str, float], *, timeout_s: float = 120.0
) -> int:
    """``fuse: auto`` for GPU trials when the driver sees no GPU: run ``auto_pack_size`` as a
    Ray task holding one trial's share of a GPU, on a node that has one.

    Returns 1 (no fusion) when no GPU node takes the task within ``timeout_s`` (all GPUs
    busy, or none in the cluster), so a sweep is never held up by the probe.
    """
    remote: Any = ray.remote  # its typing stubs reject a function with keyword arguments
    probe = remote(num_cpus=0, num_gpus=resources["gpu"], max_retries=0)(spec_adapter.pack_size_for)
    ref = probe.remote(**spec_adapter.pack_size_request(job.spec, job.data))
    try:
        size = int(ray.get(ref, timeout=timeout_s))
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError) as exc:
        ray.cancel(ref, force=True)
        log.warning("fuse=auto: no GPU worker answered the pack-size probe (%s); K = 1", exc)
        return 1
    log.info("fuse=auto: a GPU worker chose packs of %d", size)
    return size
