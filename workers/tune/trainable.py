"""The Ray Tune function trainable: one Ray trial trains one pack (``workers.tune.protocol``).

K = 1 is an ordinary trial (``l0models.train_model``); K > 1 is a fused pack. The engine
reports every member's epochs and returns one :class:`l0models.TrainResult` per member; this
module turns that into ``tune.report`` calls with checkpoints, so nothing here knows about
the database.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import ray
import torch
from ray import tune

from workers.tune import spec_adapter
from workers.tune.checkpoints import load_resume_point, write_checkpoint_files
from workers.tune.engines import select_engine
from workers.tune.model_files import write_model_files
from workers.tune.protocol import (
    EPOCH,
    FINAL,
    STARTED,
    MemberEpoch,
    PackEngine,
    TrainJob,
    members_from_config,
)
from workers.tune.stopping import make_should_stop
from workers.tune.trial_log import log_exported, log_member_epochs, pack_logged

__all__ = ["node_label", "train_pack"]


def node_label() -> str:
    """``hostname:node-id-prefix``: readable, and unique when nodes share a host."""
    node_id = ray.get_runtime_context().get_node_id()
    return f"{socket.gethostname()}:{node_id[:12]}"


def _device() -> str:
    # Ray sets CUDA_VISIBLE_DEVICES to this trial's (possibly shared) GPU.
    return "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else "cpu"


def _resume_checkpoint(config: Mapping[str, Any]) -> tune.Checkpoint | None:
    # A retried trial has Tune's own checkpoint; a trial restarted by a new runner after a
    # crash gets the last checkpoint of its previous incarnation from the driver.
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        pack = config.get("pack") or {}
        if pack.get("resume_from"):
            checkpoint = tune.Checkpoint(pack["resume_from"])
    return checkpoint


@pack_logged  # its log lines carry sweep_id, trial_id and pack (issue 15)
def train_pack(config: dict[str, Any], *, job: TrainJob, engine: PackEngine | None = None) -> None:
    """Function trainable: train the pack of ``config`` and report per the module protocol.

    Args:
        config: ``{"pack": pack_config(...)}`` or ``{"lam", "beta", "seed"}`` (Optuna).
        job: The sweep's shared job, via ``tune.with_parameters``.
        engine: Override of :func:`select_engine` (tests inject failures this way).
    """
    torch.set_num_threads(max(1, int(job.cpus_per_trial)))
    members = members_from_config(config)
    node = node_label()
    tune.report({"kind": STARTED, "node": node, "k": len(members)})

    # A tampered or truncated checkpoint is skipped (logged) for an older one, or scratch.
    point = load_resume_point(_resume_checkpoint(config))
    resumed_at = point.epoch
    # Provenance, stored with each epoch row: 0 = this run started fresh; and why
    # checkpoints were refused, if any were.
    provenance: dict[str, Any] = {"resumed_at_epoch": resumed_at}
    if point.refused:
        provenance["checkpoints_refused"] = point.refused
    epochs = job.spec.training.epochs

    def on_progress(records: Sequence[MemberEpoch], state: Any) -> None:
        log_member_epochs(members, records)
        with tempfile.TemporaryDirectory(prefix="l0sweep-ckpt-") as directory:
            write_checkpoint_files(directory, members, records, state)
            tune.report(
                {
                    "kind": EPOCH,
                    "node": node,
                    "records": [{**asdict(r), **provenance} for r in records],
                    "epoch": max(r.epoch for r in records),
                    "epochs": epochs,
                },
                checkpoint=tune.Checkpoint.from_directory(directory),
            )

    run = engine or select_engine(len(members))
    device = _device()
    # Pareto early stopping and the budget search's probes (issue 13); None: nothing stops.
    trial_key = tune.get_context().get_trial_id() or "trial"
    should_stop = make_should_stop(members, job.spec, job.rungs, key_prefix=trial_key)
    results = run(
        members,
        job,
        device=device,
        on_progress=on_progress,
        resume=point.state,
        should_stop=should_stop,
    )
    if len(results) != len(members):
        raise RuntimeError(f"engine returned {len(results)} results for {len(members)} members")

    # Where and how it trained (issue 12): the GPU's name (or "cpu") and the float32 precision.
    how = {"device": _device_name(device), "precision": job.spec.training.precision}
    measures = [{**spec_adapter.measures_dict(r), **how} for r in results]
    with tempfile.TemporaryDirectory(prefix="l0sweep-final-") as directory:
        for index, result in enumerate(results):
            # Every format once, now (docs/benchmarks.md, "Model formats"; issue 15).
            shape = job.data.input_shape
            exported = write_model_files(result, directory, index, input_shape=shape)
            log_exported(members[index], exported)
        write_checkpoint_files(directory, members, [])
        first = measures[0]
        tune.report(
            {
                "kind": FINAL,
                "node": node,
                "members": measures,
                "accuracy": first["accuracy"],
                "sparsity": first["sparsity"],
                "flops": first["flops"],
            },
            checkpoint=tune.Checkpoint.from_directory(directory),
        )
