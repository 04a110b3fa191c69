"""Every trial's epoch history of one sweep, for the workers' early-stopping board.

A runner that resumes a sweep (after a crash or a takeover) rebuilds the rung board of
pareto early stopping from the epochs its predecessors stored (``workers.tune.stopping``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Trial, TrialEpoch

__all__ = ["sweep_epoch_histories"]


def sweep_epoch_histories(session: Session, sweep_id: int) -> dict[int, list[dict[str, Any]]]:
    """trial id → its epoch rows in epoch order (epoch, accuracy, expected_l0,
    expected_flops), one query; trials without epochs are left out."""
    rows = session.execute(
        select(
            TrialEpoch.trial_id,
            TrialEpoch.epoch,
            TrialEpoch.accuracy,
            TrialEpoch.expected_l0,
            TrialEpoch.expected_flops,
        )
        .join(Trial, Trial.id == TrialEpoch.trial_id)
        .where(Trial.sweep_id == sweep_id)
        .order_by(TrialEpoch.trial_id, TrialEpoch.epoch)
    ).all()
    histories: dict[int, list[dict[str, Any]]] = {}
    for trial_id, epoch, accuracy, expected_l0, expected_flops in rows:
        histories.setdefault(int(trial_id), []).append(
            {
                "epoch": int(epoch),
                "accuracy": accuracy,
                "expected_l0": expected_l0,
                "expected_flops": expected_flops,
            }
        )
    return histories
