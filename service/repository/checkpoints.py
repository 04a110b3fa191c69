"""The resume index (issue 9): the latest checkpoint of each unfinished pack, per sweep.

In the database rather than a runner's local file, so whichever runner resumes a sweep
(after a crash, a takeover or a pause) continues its packs from their checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.models import PackCheckpoint, utcnow
from service.repository._common import insert_for

__all__ = [
    "forget_pack_checkpoint",
    "list_pack_checkpoints",
    "pack_key",
    "remember_pack_checkpoint",
]

_MAX_KEY = 64


def pack_key(trial_ids: Sequence[int]) -> str:
    """The members' ids joined by commas; a long pack is keyed by its first and last id and
    its size (a trial belongs to one unfinished pack at a time)."""
    key = ",".join(str(int(i)) for i in trial_ids)
    if len(key) <= _MAX_KEY:
        return key
    return f"{int(trial_ids[0])}..{int(trial_ids[-1])}#{len(trial_ids)}"[:_MAX_KEY]


def remember_pack_checkpoint(
    session: Session, sweep_id: int, trial_ids: Sequence[int], checkpoint: str
) -> None:
    """Record ``checkpoint`` as the latest of the pack ``trial_ids`` (replaces the older)."""
    ids = [int(i) for i in trial_ids]
    values = {"trial_ids": ids, "checkpoint": checkpoint, "updated_at": utcnow()}
    stmt = insert_for(session)(PackCheckpoint).values(
        sweep_id=sweep_id, pack_key=pack_key(ids), **values
    )
    session.execute(
        stmt.on_conflict_do_update(index_elements=["sweep_id", "pack_key"], set_=values)
    )


def forget_pack_checkpoint(session: Session, sweep_id: int, trial_ids: Sequence[int]) -> None:
    """Drop the pack's entry (it completed)."""
    session.execute(
        delete(PackCheckpoint).where(
            PackCheckpoint.sweep_id == sweep_id, PackCheckpoint.pack_key == pack_key(trial_ids)
        )
    )


def list_pack_checkpoints(session: Session, sweep_id: int) -> list[tuple[list[int], str]]:
    """``(trial ids in pack order, checkpoint)`` of the sweep's unfinished packs."""
    rows = session.execute(
        select(PackCheckpoint.trial_ids, PackCheckpoint.checkpoint)
        .where(PackCheckpoint.sweep_id == sweep_id)
        .order_by(PackCheckpoint.id)
    ).all()
    return [([int(i) for i in ids], str(path)) for ids, path in rows]
