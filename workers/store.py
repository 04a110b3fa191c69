"""The runner's view of the database: a thin adapter over ``service.repository``.

Only the Ray Tune driver (the runner process) uses this; trainables never touch the
database. Every method is one short transaction through ``service.db.session_scope`` and
returns plain values, never ORM objects bound to a closed session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from service import repository
from service.db import create_engine_for, session_scope
from service.settings import Settings

__all__ = ["SweepRow", "SweepStore", "TrialRow"]


@dataclass(frozen=True)
class SweepRow:
    id: int
    status: str
    spec: dict[str, Any]
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


def _sweep_row(sweep: Any) -> SweepRow:
    return SweepRow(
        id=int(sweep.id), status=sweep.status, spec=dict(sweep.spec), n_trials=sweep.n_trials
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
    )


def _store_from_url(url: str) -> SweepStore:
    return SweepStore(create_engine_for(url))


class SweepStore:
    """Database operations of the runner and its result-persisting callback."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Ray Tune pickles its run config (callbacks, stopper) into the experiment folder.
        return (_store_from_url, (self.engine.url.render_as_string(hide_password=False),))

    @classmethod
    def from_settings(cls, settings: Settings) -> SweepStore:
        return cls(
            create_engine_for(
                settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
            )
        )

    # ------------------------------------------------------------------ sweeps

    def claim_next_pending(self, runner_id: str) -> SweepRow | None:
        with session_scope(self.engine) as session:
            sweep = repository.claim_next_pending_sweep(session, runner_id=runner_id)
            return None if sweep is None else _sweep_row(sweep)

    def resumable(self, runner_id: str | None = None) -> list[SweepRow]:
        """Sweeps left ``running`` by ``runner_id`` (any runner: None) that stopped."""
        with session_scope(self.engine, readonly=True) as session:
            sweeps = repository.list_resumable_sweeps(session, runner_id=runner_id)
            return [_sweep_row(s) for s in sweeps]

    def sweep_status(self, sweep_id: int) -> str:
        with session_scope(self.engine, readonly=True) as session:
            return str(repository.get_sweep(session, sweep_id).status)

    def finish(self, sweep_id: int, *, status: str | None = None, error: str | None = None) -> str:
        """Mark the sweep's final status (None: from its trials); returns it."""
        with session_scope(self.engine) as session:
            sweep = repository.finish_sweep(session, sweep_id, status=status, error=error)
            return str(sweep.status)

    # ------------------------------------------------------------------ trials

    def trials(self, sweep_id: int) -> list[TrialRow]:
        with session_scope(self.engine, readonly=True) as session:
            return [_trial_row(t) for t in repository.list_trials(session, sweep_id).items]

    def add_trial(self, sweep_id: int, lam: float, beta: float, seed: int) -> int:
        with session_scope(self.engine) as session:
            return int(repository.add_trial(session, sweep_id, lam, beta, seed).id)

    def mark_pending(self, trial_ids: Sequence[int]) -> None:
        """Put unfinished trials of a crashed run back to ``pending`` (history is kept)."""
        with session_scope(self.engine) as session:
            for trial_id in trial_ids:
                repository.mark_trial_pending(session, trial_id)

    def set_pack(self, trial_ids: Sequence[int], pack: str | None) -> None:
        with session_scope(self.engine) as session:
            repository.set_trial_pack(session, trial_ids, pack)

    def mark_running(self, trial_ids: Sequence[int], *, node: str | None) -> None:
        with session_scope(self.engine) as session:
            for trial_id in trial_ids:
                repository.mark_trial_running(session, trial_id, node=node)

    def record_epoch(self, trial_id: int, row: Mapping[str, Any]) -> None:
        """Store one epoch row; storing an epoch again (a resumed trial) overwrites it."""
        with session_scope(self.engine) as session:
            repository.record_trial_epoch(session, trial_id, dict(row))

    def record_result(self, trial_id: int, metrics: Mapping[str, Any], model: bytes) -> None:
        with session_scope(self.engine) as session:
            repository.record_trial_result(session, trial_id, dict(metrics), model)

    def mark_failed(self, trial_ids: Sequence[int], error: str) -> None:
        with session_scope(self.engine) as session:
            for trial_id in trial_ids:
                repository.mark_trial_failed(session, trial_id, error)
