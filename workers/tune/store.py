"""The runner's view of the database: a thin adapter over ``service.repository``.

Only the Ray Tune driver (the runner process) uses this; trainables never touch the
database. Every method is one short transaction through ``service.db.session_scope`` and
returns plain values, never ORM objects bound to a closed session.

Transient database errors (``service.db.is_transient``: connection refused or reset, the
server shutting down, serialization failures, SQLite's "database is locked") are retried
with bounded exponential backoff and jitter; :class:`DatabaseHealth` records how long the
database has been unreachable, which the runner uses to decide when to pause a sweep. A
thread inside :func:`single_attempts` (the runner's result writer) tries each call once: it
retries on its own, and checks between attempts that the sweep is still its runner's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from service import repository
from service.db import create_engine_for, is_transient, public_url, session_scope
from service.repository import ModelFiles
from service.repository.histories import sweep_epoch_histories
from service.settings import Settings
from service.spec import SweepSpec

__all__ = [
    "DatabaseHealth",
    "RetryPolicy",
    "SweepRow",
    "SweepStore",
    "TrialRow",
    "single_attempts",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_thread = threading.local()


@contextmanager
def single_attempts() -> Iterator[None]:
    """Store calls made by this thread inside the block are tried once (no retries)."""
    before = getattr(_thread, "single", False)
    _thread.single = True
    try:
        yield
    finally:
        _thread.single = before


@dataclass(frozen=True)
class SweepRow:
    id: int
    status: str
    spec: SweepSpec
    n_trials: int


@dataclass(frozen=True)
class TrialRow:
    id: int
    lam: float
    beta: float
    seed: int
    status: str
    epochs_done: int
    metrics: dict[str, Any] | None
    weight_decay: float | None = None  # the trial's own (None: rows of older code)
    stop_at: int | None = None  # a budget probe's planned last epoch (None: the spec's)


@dataclass(frozen=True)
class RetryPolicy:
    """How one store call retries transient errors.

    Attributes:
        window_s: A call gives up (re-raises) after retrying this long.
        initial_s: First backoff; doubles per attempt, plus up to ``initial_s`` of jitter.
        max_s: Backoff cap: a call notices the database's return within about this long.
    """

    window_s: float = 30.0
    initial_s: float = 0.1
    max_s: float = 2.0


class DatabaseHealth:
    """Since when the database has been unreachable (transient errors) or reachable.

    Thread-safe: the runner loop, the result writer, the heartbeat and Ray Tune's control
    loop (the stopper) all report to one instance.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._up_since: float | None = None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = self._clock()
            self._up_since = None
        log.warning("database unreachable (%s); retrying", _one_line(exc))

    def succeeded(self) -> None:
        with self._lock:
            now = self._clock()
            if self._up_since is None:
                self._up_since = now
            down, self._down_since = self._down_since, None
        if down is not None:
            log.warning("database reachable again after %.1f s", now - down)

    def outage_s(self) -> float:
        """Seconds since the first failure of the current outage; 0 when reachable."""
        with self._lock:
            return 0.0 if self._down_since is None else self._clock() - self._down_since

    def up_for_s(self) -> float:
        """Seconds the database has answered without a transient failure; 0 when down."""
        with self._lock:
            return 0.0 if self._up_since is None else self._clock() - self._up_since


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _sweep_row(sweep: Any) -> SweepRow:
    return SweepRow(
        id=int(sweep.id),
        status=sweep.status,
        spec=repository.sweep_spec(sweep),
        n_trials=sweep.n_trials,
    )


def _trial_row(trial: Any) -> TrialRow:
    return TrialRow(
        id=int(trial.id),
        lam=float(trial.lam),
        beta=float(trial.beta),
        seed=int(trial.seed),
        status=trial.status,
        epochs_done=int(trial.epochs_done or 0),
        metrics=dict(trial.metrics) if trial.metrics else None,
        weight_decay=None if trial.weight_decay is None else float(trial.weight_decay),
        stop_at=None if trial.stop_at is None else int(trial.stop_at),
    )


def _store_from_environment(url: str, retry: RetryPolicy) -> SweepStore:
    """Unpickle a store: the engine is rebuilt from this process's settings (environment),
    which hold the password; the pickle only names the database, without credentials."""
    try:
        settings: Settings | None = Settings()
    except ValueError:  # e.g. prod settings without their variables in this process
        settings = None
    if settings is not None and public_url(settings.resolved_database_url) == url:
        return SweepStore.from_settings(settings, retry=retry)
    # Another database than the environment's: credentials come from libpq (PGPASSWORD,
    # ~/.pgpass), never from the pickle.
    return SweepStore(create_engine_for(url), retry=retry)


class SweepStore:
    """Database operations of the runner and its result-persisting callback.

    Args:
        engine: From ``service.db.create_engine_for``.
        retry: How calls retry transient errors.
        health: Shared outage bookkeeping (a new one by default).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        retry: RetryPolicy | None = None,
        health: DatabaseHealth | None = None,
    ) -> None:
        self.engine = engine
        self.retry = retry or RetryPolicy()
        self.health = health or DatabaseHealth()

    def __reduce__(self) -> tuple[Any, tuple[str, RetryPolicy]]:
        # Ray Tune pickles its run config (callbacks, stopper) into the experiment folder on
        # shared storage: the URL goes without its password.
        url = self.engine.url.render_as_string(hide_password=False)
        return (_store_from_environment, (public_url(url), self.retry))

    @classmethod
    def from_settings(cls, settings: Settings, *, retry: RetryPolicy | None = None) -> SweepStore:
        return cls(
            create_engine_for(
                settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
            ),
            retry=retry,
        )

    def _call(self, fn: Callable[[], T], *, retry: bool = True) -> T:
        """Run ``fn`` (one transaction), retrying transient errors per :attr:`retry`."""

        def attempt() -> T:
            try:
                out = fn()
            except Exception as exc:
                if is_transient(exc):
                    self.health.failed(exc)
                raise
            self.health.succeeded()
            return out

        policy = self.retry
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential_jitter(
                multiplier=policy.initial_s, max=policy.max_s, jitter=policy.initial_s
            ),
            stop=(
                stop_after_delay(policy.window_s)
                if retry and not getattr(_thread, "single", False)
                else stop_after_attempt(1)
            ),
            reraise=True,
        )
        return retrying(attempt)

    # ------------------------------------------------------------------ runners

    def heartbeat(self, runner_id: str, *, host: str, pid: int) -> None:
        """One heartbeat; not retried (the next one comes in a few seconds)."""

        def op() -> None:
            with session_scope(self.engine) as session:
                repository.record_heartbeat(session, runner_id, host=host, pid=pid)

        self._call(op, retry=False)

    def forget_runner(self, runner_id: str) -> None:
        """Drop the heartbeat row; not retried (if it fails the row just goes stale)."""

        def op() -> None:
            with session_scope(self.engine) as session:
                repository.forget_runner(session, runner_id)

        self._call(op, retry=False)

    def take_over(self, runner_id: str, timeout_s: float | None) -> SweepRow | None:
        """An orphaned running sweep, now ``runner_id``'s (``timeout_s`` None: only sweeps
        without a runner or left by ``runner_id`` itself)."""

        def op() -> SweepRow | None:
            with session_scope(self.engine) as session:
                sweep = repository.take_over_orphaned_sweep(
                    session, runner_id=runner_id, timeout_s=timeout_s
                )
                return None if sweep is None else _sweep_row(sweep)

        return self._call(op)

    def owner(self, sweep_id: int, *, retry: bool = True) -> tuple[str, str | None]:
        """``(status, runner_id)`` of the sweep."""

        def op() -> tuple[str, str | None]:
            with session_scope(self.engine, readonly=True) as session:
                status, runner = repository.sweep_owner(session, sweep_id)
                return str(status), runner

        return self._call(op, retry=retry)

    def release(self, sweep_id: int, runner_id: str) -> bool:
        """Leave the sweep ``running`` without a runner (paused); see ``release_sweep``."""

        def op() -> bool:
            with session_scope(self.engine) as session:
                return repository.release_sweep(session, sweep_id, runner_id)

        return self._call(op)

    # ------------------------------------------------------------------ sweeps

    def claim_next_pending(self, runner_id: str) -> SweepRow | None:
        def op() -> SweepRow | None:
            with session_scope(self.engine) as session:
                sweep = repository.claim_next_pending_sweep(session, runner_id=runner_id)
                return None if sweep is None else _sweep_row(sweep)

        return self._call(op)

    def resumable(self, runner_id: str | None = None) -> list[SweepRow]:
        """Sweeps left ``running`` by ``runner_id`` (any runner: None) that stopped."""

        def op() -> list[SweepRow]:
            with session_scope(self.engine, readonly=True) as session:
                sweeps = repository.list_resumable_sweeps(session, runner_id=runner_id)
                return [_sweep_row(s) for s in sweeps]

        return self._call(op)

    def sweep_status(self, sweep_id: int) -> str:
        return self.owner(sweep_id)[0]

    def finish(
        self,
        sweep_id: int,
        *,
        status: str | None = None,
        error: str | None = None,
        runner_id: str | None = None,
    ) -> str:
        """Mark the sweep's final status (None: from its trials); returns it. With
        ``runner_id``: ``ConflictError`` when another runner has taken the sweep over."""

        def op() -> str:
            with session_scope(self.engine) as session:
                sweep = repository.finish_sweep(
                    session, sweep_id, status=status, error=error, runner_id=runner_id
                )
                return str(sweep.status)

        return self._call(op)

    # ------------------------------------------------------------------ trials

    def trials(self, sweep_id: int) -> list[TrialRow]:
        def op() -> list[TrialRow]:
            with session_scope(self.engine, readonly=True) as session:
                return [_trial_row(t) for t in repository.list_trials(session, sweep_id).items]

        return self._call(op)

    def epoch_histories(self, sweep_id: int) -> dict[int, list[dict[str, Any]]]:
        """trial id → its stored epoch rows (for rebuilding the early-stopping board)."""

        def op() -> dict[int, list[dict[str, Any]]]:
            with session_scope(self.engine, readonly=True) as session:
                return sweep_epoch_histories(session, sweep_id)

        return self._call(op)

    def add_trial(
        self, sweep_id: int, lam: float, beta: float, seed: int, *, stop_at: int | None = None
    ) -> int:
        def op() -> int:
            with session_scope(self.engine) as session:
                trial = repository.add_trial(session, sweep_id, lam, beta, seed, stop_at=stop_at)
                return int(trial.id)

        return self._call(op)

    def mark_pending(self, trial_ids: Sequence[int]) -> None:
        """Put unfinished trials of a crashed run back to ``pending`` (history is kept)."""
        self._each(trial_ids, lambda session, i: repository.mark_trial_pending(session, i))

    def set_pack(self, trial_ids: Sequence[int], pack: str | None) -> None:
        def op() -> None:
            with session_scope(self.engine) as session:
                repository.set_trial_pack(session, trial_ids, pack)

        self._call(op)

    def mark_running(self, trial_ids: Sequence[int], *, node: str | None) -> None:
        self._each(
            trial_ids, lambda session, i: repository.mark_trial_running(session, i, node=node)
        )

    def record_epoch(self, trial_id: int, row: Mapping[str, Any]) -> None:
        """Store one epoch row; storing an epoch again (a resumed trial) overwrites it."""

        def op() -> None:
            with session_scope(self.engine) as session:
                repository.record_trial_epoch(session, trial_id, dict(row))

        self._call(op)

    def record_result(
        self, trial_id: int, metrics: Mapping[str, Any], model: bytes | ModelFiles
    ) -> None:
        def op() -> None:
            with session_scope(self.engine) as session:
                repository.record_trial_result(session, trial_id, dict(metrics), model)

        self._call(op)

    def mark_failed(self, trial_ids: Sequence[int], error: str) -> None:
        self._each(trial_ids, lambda session, i: repository.mark_trial_failed(session, i, error))

    def _each(self, trial_ids: Sequence[int], fn: Callable[[Any, int], Any]) -> None:
        ids = list(trial_ids)

        def op() -> None:
            with session_scope(self.engine) as session:
                for trial_id in ids:
                    fn(session, trial_id)

        self._call(op)

    # ------------------------------------------------------------------ resume index

    def pack_checkpoints(self, sweep_id: int) -> list[tuple[list[int], str]]:
        def op() -> list[tuple[list[int], str]]:
            with session_scope(self.engine, readonly=True) as session:
                return repository.list_pack_checkpoints(session, sweep_id)

        return self._call(op)

    def remember_checkpoint(self, sweep_id: int, trial_ids: Sequence[int], path: str) -> None:
        def op() -> None:
            with session_scope(self.engine) as session:
                repository.remember_pack_checkpoint(session, sweep_id, trial_ids, path)

        self._call(op)

    def forget_checkpoint(self, sweep_id: int, trial_ids: Sequence[int]) -> None:
        def op() -> None:
            with session_scope(self.engine) as session:
                repository.forget_pack_checkpoint(session, sweep_id, trial_ids)

        self._call(op)
