"""Pack engines: how the K members of one pack are trained.

- :func:`single_engine`: K = 1, one ``l0models.train_model`` run.
- :func:`sequential_engine`: K ≥ 1 ordinary runs one after another (any architecture).
- :func:`fused_pack_engine`: K members as one batched model (``l0models.fused.train_fused``);
  ``train_fused`` calls ``on_epoch(k, record)`` for every member, then ``on_state(state)``
  once per epoch, which becomes one ``on_progress(records, state)``: one Ray Tune report and
  one checkpoint per epoch for the whole pack. Architectures that cannot fuse (WRN) fall
  back to the sequential engine.

Every engine takes ``should_stop(k, history)`` (early stopping, ``protocol.StopFn``) and
passes it down: member k's single run asks it with its history, the fused pack for each
active member (a stopped member leaves the pack's computation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from l0models.fused import MemberSpec, is_fusable, train_fused
from workers.tune import spec_adapter
from workers.tune.protocol import (
    FinishedMember,
    Member,
    MemberEpoch,
    PackEngine,
    ProgressFn,
    SequentialState,
    StopFn,
    TrainJob,
)

if TYPE_CHECKING:
    from l0models import EpochRecord, TrainResult

__all__ = ["fused_pack_engine", "select_engine", "sequential_engine", "single_engine"]


def single_engine(
    members: Sequence[Member],
    job: TrainJob,
    *,
    device: str,
    on_progress: ProgressFn,
    resume: Any | None,
    should_stop: StopFn | None = None,
) -> list[TrainResult]:
    """K = 1: one ``l0models.train_model`` run, its ``TrainState`` checkpointed each epoch."""
    if len(members) != 1:
        raise ValueError(f"single_engine trains one member, got {len(members)}")
    member = members[0]

    def on_epoch(record: EpochRecord, state: Any) -> None:
        on_progress([MemberEpoch.from_record(0, record)], state)

    result = spec_adapter.train_member(
        job,
        member,
        device=device,
        on_epoch=on_epoch,
        resume=resume,
        should_stop=_member_stop(should_stop, 0),
    )
    return [result]


def _member_stop(
    should_stop: StopFn | None, index: int
) -> Callable[[Sequence[EpochRecord]], bool] | None:
    """The pack's stop decision for member ``index``, as a single run asks it."""
    if should_stop is None:
        return None
    return functools.partial(should_stop, index)


def sequential_engine(
    members: Sequence[Member],
    job: TrainJob,
    *,
    device: str,
    on_progress: ProgressFn,
    resume: Any | None,
    should_stop: StopFn | None = None,
) -> list[TrainResult | FinishedMember]:
    """K ≥ 1 members one after another inside one trial: the fallback pack engine.

    Correct for any architecture (each member is an ordinary ``train_model`` run); it only
    saves the per-trial scheduling overhead, not compute. The state (a
    :class:`SequentialState`) holds the finished members as model bytes and measures, so a
    retried pack does not train them again.
    """
    if resume is not None and not isinstance(resume, SequentialState):
        raise TypeError(f"sequential_engine resumes a SequentialState, not {type(resume)}")
    done: list[FinishedMember] = list(resume.done) if resume else []
    inner = resume.inner if resume else None
    for index in range(len(done), len(members)):

        def on_epoch(record: EpochRecord, state: Any, index: int = index) -> None:
            on_progress(
                [MemberEpoch.from_record(index, record)],
                SequentialState(done=list(done), inner=state),
            )

        result = spec_adapter.train_member(
            job,
            members[index],
            device=device,
            on_epoch=on_epoch,
            resume=inner,
            should_stop=_member_stop(should_stop, index),
        )
        done.append(spec_adapter.finished_member(result, input_shape=job.data.input_shape))
        inner = None
    return list(done)


def fused_pack_engine(
    members: Sequence[Member],
    job: TrainJob,
    *,
    device: str,
    on_progress: ProgressFn,
    resume: Any | None,
    should_stop: StopFn | None = None,
) -> Sequence[TrainResult | FinishedMember]:
    """Train ``members`` fused; architectures that cannot fuse (WRN) go one by one."""
    config = spec_adapter.arch_config(job.spec, job.data)
    if not is_fusable(config):
        return sequential_engine(
            members,
            job,
            device=device,
            on_progress=on_progress,
            resume=resume,
            should_stop=should_stop,
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
        [
            MemberSpec(lam=m.lam, beta=m.beta, seed=m.seed, weight_decay=m.weight_decay)
            for m in members
        ],
        settings=spec_adapter.train_settings(job.spec),
        data=job.data,
        device=device,
        on_epoch=on_epoch,
        on_state=on_state,
        resume=resume,
        should_stop=should_stop,
    )


def select_engine(k: int) -> PackEngine:
    """The engine for a pack of ``k`` members: K = 1 plain, else fused."""
    return single_engine if k == 1 else fused_pack_engine
