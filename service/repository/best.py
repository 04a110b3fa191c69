"""A budget sweep's answer: its most accurate trial that meets the constraint (issue 13)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Sweep, Trial
from service.spec_blocks import BudgetConstraint
from service.vocabulary import TrialStatus

__all__ = ["best_trial", "best_trials", "budget_constraint"]


def budget_constraint(sweep: Sweep) -> BudgetConstraint | None:
    """The ``search.constraint`` of a budget sweep; None for any other strategy."""
    if sweep.strategy != "budget":
        return None
    search = sweep.spec.get("search") if isinstance(sweep.spec, dict) else None
    return BudgetConstraint.model_validate((search or {}).get("constraint"))


def best_trial(session: Session, sweep: Sweep) -> Trial | None:
    """The budget sweep's completed trial of highest accuracy whose measures meet its
    constraint (bounds inclusive, as :meth:`BudgetConstraint.satisfied_by`); None when
    there is none or the sweep is not a budget sweep.

    Completed only (DESIGN §5): the answer to "the most accurate model within F" is a
    model trained to the sweep's last epoch, not a budget probe or an early-stopped trial
    (those are on the front, marked ``stopped``, and downloadable there).

    One query, filtered and ordered on the columns of the covering index
    ``ix_trials_front``: ties in accuracy go to the smaller FLOPs / parameters (the larger
    sparsity), then to the earlier trial.
    """
    constraint = budget_constraint(sweep)
    if constraint is None:
        return None
    measured = Trial.__table__.c[constraint.measure]
    if constraint.is_upper_bound:
        meets, better = measured <= constraint.value, measured.asc()
    else:
        meets, better = measured >= constraint.value, measured.desc()
    return session.scalars(
        select(Trial)
        .where(
            Trial.sweep_id == sweep.id,
            Trial.status == TrialStatus.COMPLETED,
            Trial.accuracy.is_not(None),
            meets,
        )
        .order_by(Trial.accuracy.desc(), better, Trial.id)
        .limit(1)
    ).first()


def best_trials(session: Session, sweeps: Sequence[Sweep]) -> dict[int, Trial | None]:
    """:func:`best_trial` of each sweep by id (a query per budget sweep, none for others)."""
    return {sweep.id: best_trial(session, sweep) for sweep in sweeps}
