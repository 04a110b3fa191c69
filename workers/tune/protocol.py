"""The pack protocol: what one Ray trial trains and reports, shared by every engine.

A *pack* is the unit Ray Tune schedules, retries and checkpoints: K ≥ 1 trial
configurations (:class:`Member`) of one sweep. A :class:`PackEngine` trains them and reports
:class:`MemberEpoch` records; the driver-side callback fans them out to the K trial rows.

Result kinds the trainable passes to ``tune.report`` (``kind`` field):

- ``started``: once per (re)start, with the node, so the driver records it.
- ``epoch``: ``{"records": [{"member": i, "epoch": e, "loss": ...}, ...]}`` with a checkpoint
  of the engine state, after each epoch of one or more members.
- ``final``: ``{"members": [measures of §4, ...], "accuracy", "sparsity", "flops"}`` with a
  checkpoint holding ``model_<i>.pt`` (TorchScript) per member; the top-level objectives are
  member 0's, for Optuna (which only runs K = 1 packs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from workers.tune.datasets import cached_dataset

if TYPE_CHECKING:
    from l0models import Dataset, EpochRecord, TrainResult
    from service.spec import SweepSpec

__all__ = [
    "EPOCH",
    "FINAL",
    "STARTED",
    "FinishedMember",
    "Member",
    "MemberEpoch",
    "PackEngine",
    "ProgressFn",
    "SequentialState",
    "StopFn",
    "TrainJob",
    "members_from_config",
    "model_filename",
    "pack_config",
]

STARTED, EPOCH, FINAL = "started", "epoch", "final"


@dataclass(frozen=True)
class Member:
    """One trial configuration of a pack; ``trial_id`` is the database row when known;
    ``weight_decay`` the trial's own (None: the spec's one value); ``stop_at`` ends it after
    that epoch, a stopped trial (the budget search's short probes; None: the spec's epochs)."""

    lam: float
    beta: float
    seed: int
    trial_id: int | None = None
    weight_decay: float | None = None
    stop_at: int | None = None


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
class FinishedMember:
    """A member trained to the end, as checkpoints keep it: its compacted model in every
    format (``files``, TorchScript as ``model_bytes``; ``errors`` says why a format is
    missing) and its §4 measures; never a pickled module. Members checkpointed by older
    code have ``model_bytes`` alone."""

    model_bytes: bytes
    measures: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class SequentialState:
    """The sequential engine's state: finished members, and the current one's ``TrainState``
    (None before its first epoch)."""

    done: list[FinishedMember]
    inner: Any | None = None


@dataclass(frozen=True)
class TrainJob:
    """What every trial of one sweep shares; sent once through ``tune.with_parameters``.

    It holds no tensors: the dataset is loaded from the cache in the process that uses it
    (:func:`workers.tune.datasets.cached_dataset`), so nothing per sweep accumulates in
    Ray's object store.

    Attributes:
        spec: The validated sweep spec.
        data_root: The dataset cache directory (None: ``l0models``' default).
        sweep_id: The sweep's id, for the trainables' log lines.
        log_format: The runner's log format, for the trainables' (None: the node's
            ``L0SWEEP_LOG_FORMAT``).
        rungs: The sweep's early-stopping board (``workers.tune.stopping``: a Ray actor
            handle), None without early stopping.
    """

    spec: SweepSpec
    data_root: str | None = None
    sweep_id: int | None = None
    log_format: str | None = None
    rungs: Any | None = None

    @property
    def data(self) -> Dataset:
        """The spec's dataset on CPU, from this process's cache."""
        return cached_dataset(self.spec.dataset, self.data_root)

    @property
    def cpus_per_trial(self) -> float:
        """Threads torch may use inside one trial."""
        return float(self.spec.resources.cpus_per_trial)


# (records of finished member-epochs, picklable engine state to resume from)
ProgressFn = Callable[[Sequence[MemberEpoch], Any], None]
# (member index in the pack, that member's epoch records so far) -> stop it now
StopFn = Callable[[int, Sequence["EpochRecord"]], bool]


class PackEngine(Protocol):
    """Trains the members of one pack (``workers.tune.engines`` has the three engines).

    Contract: call ``on_progress(records, state)`` after each epoch with the member-epochs it
    finished and a ``state`` (``TrainState``, ``FusedState`` or :class:`SequentialState`;
    ``workers.tune.checkpoints`` turns it into a plain dict of tensors) such that calling the
    engine again with ``resume=state`` continues exactly where it stopped; return one
    ``TrainResult`` (or :class:`FinishedMember`) per member, in member order, each measured
    and compactable on its own.

    ``should_stop(k, history)`` (early stopping): asked after each epoch but the last for
    member k (its index in ``members``) with its records so far, and on resume for the
    resumed history; True ends member k there (``TrainResult.stopped_epoch``; the measures
    of :func:`workers.tune.spec_adapter.measures_dict` carry ``"stopped_epoch"``).
    """

    def __call__(
        self,
        members: Sequence[Member],
        job: TrainJob,
        *,
        device: str,
        on_progress: ProgressFn,
        resume: Any | None,
        should_stop: StopFn | None = None,
    ) -> Sequence[TrainResult | FinishedMember]: ...


def pack_config(members: Sequence[Member], *, resume_from: str | None = None) -> dict[str, Any]:
    """The Ray Tune config of one pack (one grid point of the Tuner's param space)."""
    return {"members": [asdict(m) for m in members], "resume_from": resume_from}


def members_from_config(config: Mapping[str, Any]) -> list[Member]:
    """Members of a trial config: a ``pack`` (grid/random), or one λ/β/seed (Optuna, and
    the budget search, whose probes also carry ``stop_at``)."""
    pack = config.get("pack")
    if pack is not None:
        return [Member(**m) for m in pack["members"]]
    stop_at = config.get("stop_at")
    return [
        Member(
            lam=float(config["lam"]),
            beta=float(config["beta"]),
            seed=int(config["seed"]),
            stop_at=None if stop_at is None else int(stop_at),
        )
    ]


def model_filename(index: int) -> str:
    return f"model_{index}.pt"
