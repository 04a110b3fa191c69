"""Sweeps: create (with idempotency keys), read, count, claim, cancel and finish."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import ConflictError, IdempotencyKeyReusedError, NotFoundError
from service.models import Sweep, Trial, utcnow
from service.repository._common import Page
from service.spec import SweepSpec
from service.vocabulary import (
    FINISHED_SWEEP_STATUSES,
    OPEN_TRIAL_STATUSES,
    RESULT_TRIAL_STATUSES,
    SweepStatus,
    TrialStatus,
)

__all__ = [
    "cancel_sweep",
    "claim_next_pending_sweep",
    "count_sweeps",
    "create_sweep",
    "finish_sweep",
    "get_sweep",
    "list_resumable_sweeps",
    "list_sweeps",
    "lock_sweep",
    "sweep_counts",
    "sweep_counts_many",
    "sweep_spec",
]


def create_sweep(session: Session, spec: SweepSpec, *, idempotency_key: str | None = None) -> Sweep:
    """Store a sweep and its initial trials (grid/random) in one transaction.

    With ``idempotency_key``, a second call with the same key returns the first sweep and
    writes nothing; the same key with a different spec raises
    :class:`IdempotencyKeyReusedError`.
    """
    spec_hash = spec.fingerprint()
    if idempotency_key is not None:
        existing = _sweep_by_key(session, idempotency_key, spec_hash)
        if existing is not None:
            return existing
    points = spec.initial_trials()
    now = utcnow()
    sweep = Sweep(
        name=spec.display_name,
        status=SweepStatus.PENDING,
        strategy=spec.strategy,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec_hash,
        n_trials=spec.n_trials,
        idempotency_key=idempotency_key,
        created_at=now,
        updated_at=now,
    )
    try:
        # A savepoint, so that losing a race on the idempotency key leaves the session usable.
        with session.begin_nested():
            session.add(sweep)
            session.flush()
            if points:
                session.execute(
                    insert(Trial),
                    [
                        {
                            "sweep_id": sweep.id,
                            "number": i,
                            "lam": p.lam,
                            "beta": p.beta,
                            "seed": p.seed,
                            "weight_decay": spec.trial_weight_decay(p),
                            "status": TrialStatus.PENDING,
                            "epochs_done": 0,
                            "created_at": now,
                        }
                        for i, p in enumerate(points)
                    ],
                )
    except IntegrityError:
        if idempotency_key is None:
            raise
        existing = _sweep_by_key(session, idempotency_key, spec_hash)
        if existing is None:
            raise
        return existing
    return sweep


def _sweep_by_key(session: Session, key: str, spec_hash: str) -> Sweep | None:
    sweep = session.scalars(select(Sweep).where(Sweep.idempotency_key == key)).one_or_none()
    if sweep is not None and sweep.spec_hash != spec_hash:
        raise IdempotencyKeyReusedError(
            f"Idempotency-Key {key!r} was already used for a different sweep spec"
        )
    return sweep


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    """The sweep with ``sweep_id``; raises :class:`NotFoundError`."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFoundError(f"sweep {sweep_id} not found")
    return sweep


def sweep_spec(sweep: Sweep) -> SweepSpec:
    """The stored spec of ``sweep`` as a :class:`SweepSpec`."""
    return SweepSpec.model_validate(sweep.spec)


def list_sweeps(session: Session, *, limit: int = 50, offset: int = 0) -> Page[Sweep]:
    """Sweeps, newest first."""
    items = session.scalars(
        select(Sweep).order_by(Sweep.created_at.desc(), Sweep.id.desc()).limit(limit).offset(offset)
    ).all()
    return Page(list(items), count_sweeps(session))


def count_sweeps(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Sweep)) or 0)


def sweep_counts(session: Session, sweep_id: int) -> dict[str, int]:
    """Trial counts by status (every status present, zeros included)."""
    return sweep_counts_many(session, [sweep_id])[sweep_id]


def sweep_counts_many(session: Session, sweep_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """:func:`sweep_counts` for several sweeps in one query."""
    counts = {sid: {status.value: 0 for status in TrialStatus} for sid in sweep_ids}
    if not sweep_ids:
        return counts
    rows = session.execute(
        select(Trial.sweep_id, Trial.status, func.count())
        .where(Trial.sweep_id.in_(list(sweep_ids)))
        .group_by(Trial.sweep_id, Trial.status)
    )
    for sid, status, n in rows:
        counts[sid][status] = int(n)
    return counts


def claim_next_pending_sweep(session: Session, *, runner_id: str) -> Sweep | None:
    """Atomically move the oldest pending sweep to ``running`` and return it.

    Two runners never get the same sweep: PostgreSQL uses ``FOR UPDATE SKIP LOCKED``;
    SQLite an ``UPDATE ... WHERE status = 'pending'`` inside a write (IMMEDIATE) transaction.
    """
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        sweep_id = session.scalar(
            select(Sweep.id)
            .where(Sweep.status == SweepStatus.PENDING)
            .order_by(Sweep.created_at, Sweep.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if sweep_id is None:
            return None
        session.execute(
            update(Sweep)
            .where(Sweep.id == sweep_id)
            .values(status=SweepStatus.RUNNING, runner_id=runner_id, started_at=now, updated_at=now)
        )
    else:
        oldest = (
            select(Sweep.id)
            .where(Sweep.status == SweepStatus.PENDING)
            .order_by(Sweep.created_at, Sweep.id)
            .limit(1)
            .scalar_subquery()
        )
        sweep_id = session.scalar(
            update(Sweep)
            .where(Sweep.id == oldest, Sweep.status == SweepStatus.PENDING)
            .values(status=SweepStatus.RUNNING, runner_id=runner_id, started_at=now, updated_at=now)
            .returning(Sweep.id)
        )
        if sweep_id is None:
            return None
    session.expire_all()
    return get_sweep(session, sweep_id)


def list_resumable_sweeps(session: Session, *, runner_id: str | None = None) -> list[Sweep]:
    """Sweeps left ``running`` (e.g. by a crashed runner), oldest first.

    Their completed trials are kept; the runner re-runs the others (see
    :func:`mark_trial_pending`).
    """
    query = select(Sweep).where(Sweep.status == SweepStatus.RUNNING)
    if runner_id is not None:
        query = query.where(Sweep.runner_id == runner_id)
    return list(session.scalars(query.order_by(Sweep.created_at, Sweep.id)).all())


def cancel_sweep(session: Session, sweep_id: int) -> Sweep:
    """Cancel a pending or running sweep and its pending/running trials (finished ones,
    ``stopped`` included, keep their status).

    Cancelling a cancelled sweep returns it unchanged; a completed or failed one raises
    :class:`ConflictError`. Runners poll ``get_sweep(...).status`` to stop.
    """
    sweep = lock_sweep(session, sweep_id)
    if sweep.status == SweepStatus.CANCELLED:
        return sweep
    if sweep.status in FINISHED_SWEEP_STATUSES:
        raise ConflictError(f"sweep {sweep_id} is already {sweep.status}")
    now = utcnow()
    session.execute(
        update(Trial)
        .where(Trial.sweep_id == sweep_id, Trial.status.in_(OPEN_TRIAL_STATUSES))
        .values(status=TrialStatus.CANCELLED, finished_at=now)
    )
    sweep.status = SweepStatus.CANCELLED
    sweep.finished_at = now
    sweep.updated_at = now
    session.flush()
    return sweep


def finish_sweep(
    session: Session,
    sweep_id: int,
    *,
    status: str | None = None,
    error: str | None = None,
    runner_id: str | None = None,
) -> Sweep:
    """Mark a sweep finished.

    Without ``status``: ``failed`` when no trial has a result (``completed`` or
    ``stopped``) and some failed, else ``completed``. A cancelled sweep stays cancelled.
    With ``runner_id``, only that runner may finish a running sweep:
    :class:`ConflictError` when another runner took it over.
    """
    sweep = lock_sweep(session, sweep_id)
    if sweep.status == SweepStatus.CANCELLED:
        return sweep
    if runner_id is not None and sweep.runner_id != runner_id:
        raise ConflictError(f"sweep {sweep_id} is run by {sweep.runner_id}, not {runner_id}")
    if status is None:
        counts = sweep_counts(session, sweep_id)
        with_result = sum(counts[status] for status in RESULT_TRIAL_STATUSES)
        no_result = with_result == 0 and counts[TrialStatus.FAILED] > 0
        status = SweepStatus.FAILED if no_result else SweepStatus.COMPLETED
    if status not in (SweepStatus.COMPLETED, SweepStatus.FAILED):
        raise ValueError(f"a sweep finishes as completed or failed, not {status!r}")
    now = utcnow()
    sweep.status = SweepStatus(status)
    sweep.error = error
    sweep.finished_at = now
    sweep.updated_at = now
    session.flush()
    return sweep


def lock_sweep(session: Session, sweep_id: int) -> Sweep:
    sweep = session.scalars(
        select(Sweep).where(Sweep.id == sweep_id).with_for_update()
    ).one_or_none()
    if sweep is None:
        raise NotFoundError(f"sweep {sweep_id} not found")
    return sweep
