"""The Ray Tune trainable: one Ray trial trains one *pack* of K ≥ 1 trial configurations.

A pack is the unit Ray Tune schedules, retries and checkpoints; its members are the sweep's
trial rows. K = 1 is an ordinary trial (``l0models.train_model``); K > 1 is a fused pack
(issue 5) trained by a :class:`PackEngine` that reports every member's epochs and returns one
:class:`l0models.TrainResult` per member. The driver-side callback fans the pack's results
out to the K trial rows, so nothing here knows about the database.

Result protocol (what the trainable passes to ``tune.report``):

- ``{"kind": "started", "node": ...}`` once per (re)start, so the driver records the node.
- ``{"kind": "epoch", "records": [{"member": i, "epoch": e, "loss": ...}, ...]}`` with a
  checkpoint of the engine state, after each epoch of one or more members.
- ``{"kind": "final", "members": [measures of §4, ...], "accuracy", "sparsity", "flops"}``
  with a checkpoint holding ``model_<i>.pt`` (TorchScript) per member; the top-level
  objectives are member 0's, for Optuna (which only runs K = 1 packs).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import ray
import torch
from ray import tune

from workers import _l0

if TYPE_CHECKING:
    from l0models import Dataset, EpochRecord, TrainResult

__all__ = [
    "EPOCH",
    "FINAL",
    "STARTED",
    "Member",
    "MemberEpoch",
    "PackEngine",
    "ProgressFn",
    "TrainJob",
    "members_from_config",
    "model_filename",
    "node_label",
    "pack_config",
    "select_engine",
    "sequential_engine",
    "single_engine",
    "train_pack",
]

STARTED, EPOCH, FINAL = "started", "epoch", "final"
STATE_FILE = "pack_state.pt"
META_FILE = "pack_meta.json"


@dataclass(frozen=True)
class Member:
    """One trial configuration of a pack; ``trial_id`` is the database row when known."""

    lam: float
    beta: float
    seed: int
    trial_id: int | None = None


@dataclass(frozen=True)
class MemberEpoch:
    """One finished epoch of one pack member (index ``member`` in the pack)."""

    member: int
    epoch: int
    loss: float
    accuracy: float | None
    expected_l0: float
    expected_flops: float
    seconds: float

    @classmethod
    def from_record(cls, member: int, record: EpochRecord) -> MemberEpoch:
        return cls(
            member=member,
            epoch=int(record.epoch),
            loss=float(record.loss),
            accuracy=None if record.accuracy is None else float(record.accuracy),
            expected_l0=float(record.expected_l0),
            expected_flops=float(record.expected_flops),
            seconds=float(record.seconds),
        )


@dataclass(frozen=True)
class TrainJob:
    """What every trial of one sweep shares; sent once through ``tune.with_parameters``.

    Attributes:
        spec: The sweep spec as JSON-able dict (``SweepSpec.model_dump(mode="json")``).
        data: The dataset, loaded once by the driver (CPU tensors).
        cpus_per_trial: Threads torch may use inside one trial.
    """

    spec: Mapping[str, Any]
    data: Dataset
    cpus_per_trial: float = 1.0


# (records of finished member-epochs, picklable engine state to resume from)
ProgressFn = Callable[[Sequence[MemberEpoch], Any], None]


class PackEngine(Protocol):
    """Trains the members of one pack; the fused trainer of issue 5 is one of these.

    Contract: call ``on_progress(records, state)`` after each epoch with the member-epochs it
    finished and a picklable ``state`` such that calling the engine again with
    ``resume=state`` continues exactly where it stopped; return one ``TrainResult`` per
    member, in member order, each measured and compactable on its own.
    """

    def __call__(
        self,
        members: Sequence[Member],
        job: TrainJob,
        *,
        device: str,
        on_progress: ProgressFn,
        resume: Any | None,
    ) -> list[TrainResult]: ...


def single_engine(
    members: Sequence[Member],
    job: TrainJob,
    *,
    device: str,
    on_progress: ProgressFn,
    resume: Any | None,
) -> list[TrainResult]:
    """K = 1: one ``l0models.train_model`` run, its ``TrainState`` checkpointed each epoch."""
    if len(members) != 1:
        raise ValueError(f"single_engine trains one member, got {len(members)}")
    member = members[0]

    def on_epoch(record: EpochRecord, state: Any) -> None:
        on_progress([MemberEpoch.from_record(0, record)], state)

    return [_l0.train_member(job, member, device=device, on_epoch=on_epoch, resume=resume)]


def sequential_engine(
    members: Sequence[Member],
    job: TrainJob,
    *,
    device: str,
    on_progress: ProgressFn,
    resume: Any | None,
) -> list[TrainResult]:
    """K ≥ 1 members one after another inside one trial: the fallback pack engine.

    Correct for any architecture (each member is an ordinary ``train_model`` run); it only
    saves the per-trial scheduling overhead, not compute. The state holds the finished
    members' results, so a retried pack does not train them again.
    """
    done: list[TrainResult] = list(resume["done"]) if resume else []
    inner = resume["inner"] if resume else None
    for index in range(len(done), len(members)):

        def on_epoch(record: EpochRecord, state: Any, index: int = index) -> None:
            on_progress([MemberEpoch.from_record(index, record)], {"done": done, "inner": state})

        done.append(
            _l0.train_member(job, members[index], device=device, on_epoch=on_epoch, resume=inner)
        )
        inner = None
    return done


def select_engine(k: int) -> PackEngine:
    """The engine for a pack of ``k`` members: K = 1 plain, else fused when available."""
    if k == 1:
        return single_engine
    fused = _l0.fused_engine()
    return fused if fused is not None else sequential_engine


def pack_config(members: Sequence[Member], *, resume_from: str | None = None) -> dict[str, Any]:
    """The Ray Tune config of one pack (one grid point of the Tuner's param space)."""
    return {"members": [asdict(m) for m in members], "resume_from": resume_from}


def members_from_config(config: Mapping[str, Any]) -> list[Member]:
    """Members of a trial config: a ``pack`` (grid/random), or one λ/β/seed (Optuna)."""
    pack = config.get("pack")
    if pack is not None:
        return [Member(**m) for m in pack["members"]]
    return [Member(lam=float(config["lam"]), beta=float(config["beta"]), seed=int(config["seed"]))]


def node_label() -> str:
    """``hostname:node-id-prefix``: readable, and unique when nodes share a host."""
    node_id = ray.get_runtime_context().get_node_id()
    return f"{socket.gethostname()}:{node_id[:12]}"


def model_filename(index: int) -> str:
    return f"model_{index}.pt"


def _device() -> str:
    # Ray sets CUDA_VISIBLE_DEVICES to this trial's (possibly shared) GPU.
    return "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


def _load_state(checkpoint: tune.Checkpoint | None) -> tuple[Any | None, int]:
    """(engine state, last epoch it holds) of a checkpoint; (None, 0) without one."""
    if checkpoint is None:
        return None, 0
    with checkpoint.as_directory() as directory:
        path = Path(directory) / STATE_FILE
        if not path.exists():
            return None, 0
        meta = json.loads(Path(directory, META_FILE).read_text(encoding="utf-8"))
        epoch = max((int(r["epoch"]) for r in meta["records"]), default=0)
        # Our own checkpoint files, written by this trainable: trusted.
        return torch.load(path, map_location="cpu", weights_only=False), epoch


def _resume_checkpoint(config: Mapping[str, Any]) -> tune.Checkpoint | None:
    # A retried trial has Tune's own checkpoint; a trial restarted by a new runner after a
    # crash gets the last checkpoint of its previous incarnation from the driver.
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        pack = config.get("pack") or {}
        if pack.get("resume_from"):
            checkpoint = tune.Checkpoint(pack["resume_from"])
    return checkpoint


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

    checkpoint = _resume_checkpoint(config)
    resume, resumed_at = _load_state(checkpoint)
    epochs = int(job.spec["training"]["epochs"])

    def on_progress(records: Sequence[MemberEpoch], state: Any) -> None:
        with tempfile.TemporaryDirectory(prefix="l0sweep-ckpt-") as directory:
            torch.save(state, os.path.join(directory, STATE_FILE))
            _write_meta(directory, members, records)
            tune.report(
                {
                    "kind": EPOCH,
                    "node": node,
                    # Provenance, stored with each epoch row: 0 = this run started fresh.
                    "records": [{**asdict(r), "resumed_at_epoch": resumed_at} for r in records],
                    "epoch": max(r.epoch for r in records),
                    "epochs": epochs,
                },
                checkpoint=tune.Checkpoint.from_directory(directory),
            )

    run = engine or select_engine(len(members))
    results = run(members, job, device=_device(), on_progress=on_progress, resume=resume)
    if len(results) != len(members):
        raise RuntimeError(f"engine returned {len(results)} results for {len(members)} members")

    measures = [_l0.measures_dict(r) for r in results]
    with tempfile.TemporaryDirectory(prefix="l0sweep-final-") as directory:
        for index, result in enumerate(results):
            _l0.export_model(result, os.path.join(directory, model_filename(index)))
        _write_meta(directory, members, [])
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


def _write_meta(directory: str, members: Sequence[Member], records: Sequence[MemberEpoch]) -> None:
    meta = {"members": [asdict(m) for m in members], "records": [asdict(r) for r in records]}
    Path(directory, META_FILE).write_text(json.dumps(meta), encoding="utf-8")
