"""Fused packs (issue 5): the :class:`~workers.trainable.PackEngine` that trains the K
members of a pack as one batched model with ``l0models.fused.train_fused``.

``train_fused`` calls ``on_epoch(k, record)`` for every member, then ``on_state(state)``
once per epoch; the engine turns that into one ``on_progress(records, state)`` — one
Ray Tune report and one checkpoint per epoch for the whole pack, which the driver fans
out to the K trial rows. A retried pack resumes all members from that ``FusedState``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from l0models.fused import MemberSpec, is_fusable, train_fused
from workers import _l0
from workers.trainable import Member, MemberEpoch, ProgressFn, TrainJob, sequential_engine

__all__ = ["fused_pack_engine"]


def fused_pack_engine(
    members: Sequence[Member],
    job: TrainJob,
    *,
    device: str,
    on_progress: ProgressFn,
    resume: Any | None,
) -> list[Any]:
    """Train ``members`` fused; architectures that cannot fuse (WRN) go one by one."""
    config = _l0.arch_config(job.spec, job.data)
    if not is_fusable(config):
        return sequential_engine(
            members, job, device=device, on_progress=on_progress, resume=resume
        )
    pending: list[MemberEpoch] = []

    def on_epoch(k: int, record: Any) -> None:
        pending.append(MemberEpoch.from_record(k, record))

    def on_state(state: Any) -> None:
        records = list(pending)
        pending.clear()
        on_progress(records, state)

    return train_fused(
        config,
        [MemberSpec(lam=m.lam, beta=m.beta, seed=m.seed) for m in members],
        settings=_l0.train_settings(job.spec),
        data=job.data,
        device=device,
        on_epoch=on_epoch,
        on_state=on_state,
        resume=resume,
    )
