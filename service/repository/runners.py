"""Runner liveness (issue 9): heartbeats, takeover of orphaned sweeps, ownership checks.

A runner writes its heartbeat every few seconds. A ``running`` sweep belongs to the runner
named in ``sweeps.runner_id``; when that runner's heartbeat is older than the timeout (or it
has none, or the sweep has no runner), any live runner may take the sweep over. The takeover
is a compare-and-swap on ``runner_id`` (and ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two
runners never both win one sweep, on either database.

Heartbeats are written and judged by the database's clock on PostgreSQL (``now()`` of the
server), so runners on different machines need not agree on the time. SQLite is one file on
one host: every runner there shares that host's clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from service.models import Runner, Sweep, utcnow
from service.repository._common import insert_for
from service.repository.sweeps import get_sweep
from service.vocabulary import SweepStatus

__all__ = [
    "database_now",
    "forget_runner",
    "record_heartbeat",
    "release_sweep",
    "sweep_owner",
    "take_over_orphaned_sweep",
]


def database_now(session: Session) -> datetime:
    """The time by the database's clock: the server's ``now()`` on PostgreSQL (one clock for
    runners on many hosts); this process's clock on SQLite (one host)."""
    if session.get_bind().dialect.name == "postgresql":
        now = session.scalar(select(func.now()))
        assert isinstance(now, datetime)
        return now
    return utcnow()


def record_heartbeat(session: Session, runner_id: str, *, host: str, pid: int) -> None:
    """Create or refresh ``runner_id``'s heartbeat row (now, by the database's clock)."""
    now = database_now(session)
    stmt = insert_for(session)(Runner).values(
        id=runner_id, host=host[:200], pid=pid, started_at=now, heartbeat_at=now
    )
    session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now}))


def forget_runner(session: Session, runner_id: str) -> None:
    """Drop a stopping runner's heartbeat, so its sweeps can be taken over at once."""
    session.execute(delete(Runner).where(Runner.id == runner_id))


def _orphaned(runner_id: str, timeout_s: float | None, now: datetime) -> ColumnElement[bool]:
    """``running`` sweeps without a live runner (``runner_id`` counts as not running them);
    ``timeout_s`` None: only sweeps without a runner or left by ``runner_id``."""
    mine = or_(Sweep.runner_id.is_(None), Sweep.runner_id == runner_id)
    if timeout_s is None:
        return and_(Sweep.status == SweepStatus.RUNNING, mine)
    cutoff = now - timedelta(seconds=timeout_s)
    live = exists().where(Runner.id == Sweep.runner_id, Runner.heartbeat_at >= cutoff)
    return and_(Sweep.status == SweepStatus.RUNNING, or_(mine, ~live))


def take_over_orphaned_sweep(
    session: Session, *, runner_id: str, timeout_s: float | None
) -> Sweep | None:
    """Make ``runner_id`` the runner of the oldest orphaned ``running`` sweep, and return it.

    Orphaned: no runner, a runner whose heartbeat is older than ``timeout_s`` (or absent),
    or ``runner_id`` itself (a sweep it left, e.g. after a restart with the same id or a
    failed step). The caller must not be running that sweep already. ``timeout_s`` None
    leaves other runners' sweeps alone (e.g. just after an outage, when every heartbeat is
    old). None when there is none.
    """
    condition = _orphaned(runner_id, timeout_s, database_now(session))
    query = select(Sweep.id, Sweep.runner_id).where(condition).order_by(Sweep.created_at, Sweep.id)
    if session.get_bind().dialect.name == "postgresql":
        # A sweep another runner is claiming right now is skipped, not waited for.
        query = query.with_for_update(of=Sweep, skip_locked=True)
    for sweep_id, previous in session.execute(query.limit(8)).all():
        # Compare-and-swap: only if the owner is still the one we judged dead.
        won = session.scalar(
            update(Sweep)
            .where(
                Sweep.id == sweep_id,
                Sweep.runner_id.is_not_distinct_from(previous),
                condition,
            )
            .values(runner_id=runner_id, updated_at=utcnow())
            .returning(Sweep.id)
            .execution_options(synchronize_session=False)
        )
        if won is not None:
            session.expire_all()
            return get_sweep(session, sweep_id)
    return None


def sweep_owner(session: Session, sweep_id: int) -> tuple[SweepStatus, str | None]:
    """``(status, runner_id)`` of a sweep: what a running sweep's stopper polls."""
    row = session.execute(
        select(Sweep.status, Sweep.runner_id).where(Sweep.id == sweep_id)
    ).one_or_none()
    if row is None:
        get_sweep(session, sweep_id)  # raises NotFoundError
    assert row is not None
    return SweepStatus(row[0]), row[1]


def release_sweep(session: Session, sweep_id: int, runner_id: str) -> bool:
    """Leave a ``running`` sweep of ``runner_id`` without a runner (paused): the next loop
    pass of any live runner resumes it. False when ``runner_id`` no longer runs it."""
    released = session.scalar(
        update(Sweep)
        .where(
            Sweep.id == sweep_id,
            Sweep.runner_id == runner_id,
            Sweep.status == SweepStatus.RUNNING,
        )
        .values(runner_id=None, updated_at=utcnow())
        .returning(Sweep.id)
        .execution_options(synchronize_session=False)
    )
    return released is not None
