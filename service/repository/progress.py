"""How far sweeps have got: trial-epochs done against the sweep's planned total."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.models import Sweep, Trial
from service.vocabulary import TrialStatus

__all__ = ["EpochProgress", "sweep_epoch_progress"]


@dataclass(frozen=True)
class EpochProgress:
    """Trial-epochs of one sweep: done so far and planned (``n_trials`` × epochs). An
    early-stopped trial is done: it counts all its planned epochs."""

    sweep_id: int
    epochs_done: int
    epochs_total: int


def sweep_epoch_progress(session: Session, sweep_ids: Sequence[int]) -> list[EpochProgress]:
    """Progress of the given sweeps in one query each for sweeps and trials.

    Unknown ids are left out; the result follows the order of ``sweep_ids``.
    """
    ids = list(dict.fromkeys(sweep_ids))
    if not ids:
        return []
    sweeps = session.execute(
        select(Sweep.id, Sweep.n_trials, Sweep.spec).where(Sweep.id.in_(ids))
    ).all()
    epochs = {sid: _epochs(spec) for sid, _, spec in sweeps}
    planned = {sid: n_trials * epochs[sid] for sid, n_trials, _ in sweeps}
    stopped = Trial.status == TrialStatus.STOPPED
    done = {
        sid: int(trained) + int(n_stopped) * epochs[sid]
        for sid, trained, n_stopped in session.execute(
            select(
                Trial.sweep_id,
                func.coalesce(func.sum(case((stopped, 0), else_=Trial.epochs_done)), 0),
                func.coalesce(func.sum(case((stopped, 1), else_=0)), 0),
            )
            .where(Trial.sweep_id.in_(list(planned)))
            .group_by(Trial.sweep_id)
        )
    }
    return [EpochProgress(sid, done.get(sid, 0), planned[sid]) for sid in ids if sid in planned]


def _epochs(spec: dict[str, object]) -> int:
    training = spec.get("training")
    epochs = training.get("epochs") if isinstance(training, dict) else None
    return int(epochs) if isinstance(epochs, int) else 0
