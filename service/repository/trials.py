"""Trial lifecycle: add (optuna), read, list, pack, and the pending/running/failed moves."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.errors import ConflictError, NotFoundError
from service.models import Sweep, Trial, utcnow
from service.repository._common import Page
from service.repository.sweeps import get_sweep, lock_sweep, sweep_spec
from service.vocabulary import FINISHED_SWEEP_STATUSES, RESULT_TRIAL_STATUSES, TrialStatus

__all__ = [
    "add_trial",
    "get_trial",
    "list_trials",
    "mark_trial_failed",
    "mark_trial_pending",
    "mark_trial_running",
    "set_trial_pack",
]


def add_trial(
    session: Session,
    sweep_id: int,
    lam: float,
    beta: float,
    seed: int,
    *,
    pack: str | None = None,
    weight_decay: float | None = None,
    stop_at: int | None = None,
) -> Trial:
    """Append a trial to a sweep (optuna and budget strategies: as the search asks).
    ``weight_decay``: None is the sweep spec's (one) value; ``stop_at``: the epoch a budget
    probe stops at (None: the spec's epochs).

    Raises :class:`ConflictError` when the sweep is finished or already has ``n_trials``.
    """
    if pack is not None and len(pack) > 200:
        raise ValueError("a pack id has at most 200 characters")
    sweep = lock_sweep(session, sweep_id)
    if sweep.status in FINISHED_SWEEP_STATUSES:
        raise ConflictError(f"sweep {sweep_id} is {sweep.status}")
    number = int(
        session.scalar(select(func.count()).select_from(Trial).where(Trial.sweep_id == sweep_id))
        or 0
    )
    if number >= sweep.n_trials:
        raise ConflictError(f"sweep {sweep_id} already has its {sweep.n_trials} trials")
    trial = Trial(
        sweep_id=sweep_id,
        number=number,
        lam=float(lam),
        beta=float(beta),
        seed=int(seed),
        weight_decay=_weight_decay(sweep, weight_decay),
        stop_at=None if stop_at is None else int(stop_at),
        status=TrialStatus.PENDING,
        pack=pack,
        epochs_done=0,
        created_at=utcnow(),
    )
    session.add(trial)
    session.flush()
    return trial


def _weight_decay(sweep: Sweep, weight_decay: float | None) -> float:
    if weight_decay is not None:
        return float(weight_decay)
    return sweep_spec(sweep).training.weight_decays()[0]


def get_trial(session: Session, trial_id: int) -> Trial:
    """The trial with ``trial_id``; raises :class:`NotFoundError`."""
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise NotFoundError(f"trial {trial_id} not found")
    return trial


def list_trials(
    session: Session,
    sweep_id: int,
    *,
    status: str | Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Page[Trial]:
    """Trials of a sweep in their ``number`` order, optionally filtered by status.

    Raises :class:`NotFoundError` for an unknown sweep.
    """
    get_sweep(session, sweep_id)
    where = [Trial.sweep_id == sweep_id]
    if status is not None:
        where.append(Trial.status.in_([status] if isinstance(status, str) else list(status)))
    query = select(Trial).where(*where).order_by(Trial.number).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    total = session.scalar(select(func.count()).select_from(Trial).where(*where)) or 0
    return Page(list(session.scalars(query).all()), int(total))


def set_trial_pack(session: Session, trial_ids: Sequence[int], pack: str | None) -> None:
    """Group trials into a fused pack (issue 5), or ungroup them with ``None``."""
    if pack is not None and len(pack) > 200:
        raise ValueError("a pack id has at most 200 characters")
    if trial_ids:
        session.execute(update(Trial).where(Trial.id.in_(list(trial_ids))).values(pack=pack))


def mark_trial_running(session: Session, trial_id: int, *, node: str | None = None) -> Trial:
    """``pending``/``failed`` -> ``running`` on ``node``. A trial with a result
    (``completed``, ``stopped``) or ``cancelled`` is left as it is."""
    trial = get_trial(session, trial_id)
    if trial.status in RESULT_TRIAL_STATUSES or trial.status == TrialStatus.CANCELLED:
        return trial
    trial.status = TrialStatus.RUNNING
    trial.node = node[:200] if node else node  # the column's width; host names fit
    trial.error = None
    trial.started_at = utcnow()
    session.flush()
    return trial


def mark_trial_pending(session: Session, trial_id: int) -> Trial:
    """Put a running/failed trial back to ``pending`` (retry, crash resume).

    ``epochs_done`` and the epoch history are kept (the runner resumes from its
    checkpoint); a completed or stopped trial is left as it is so no result is lost, and a
    cancelled one stays cancelled (a cancel may land between a runner's read and its write).
    """
    trial = get_trial(session, trial_id)
    if trial.status in RESULT_TRIAL_STATUSES or trial.status == TrialStatus.CANCELLED:
        return trial
    trial.status = TrialStatus.PENDING
    trial.node = None
    trial.finished_at = None
    session.flush()
    return trial


def mark_trial_failed(session: Session, trial_id: int, error: str) -> Trial:
    """Mark a trial failed with ``error``; a completed or stopped trial keeps its result."""
    trial = get_trial(session, trial_id)
    if trial.status in RESULT_TRIAL_STATUSES:
        return trial
    trial.status = TrialStatus.FAILED
    trial.error = error[:10_000]
    trial.finished_at = utcnow()
    session.flush()
    return trial
