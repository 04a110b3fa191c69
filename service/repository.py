"""Repository functions: the only place that builds queries.

Every function takes a :class:`~sqlalchemy.orm.Session` opened by
:func:`service.db.session_scope` and leaves committing to it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from sqlalchemy import Select, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import pareto
from service.errors import (
    ConflictError,
    IdempotencyKeyReusedError,
    InvalidMetricsError,
    NotFoundError,
)
from service.models import TRIAL_STATUSES, Sweep, Trial, TrialEpoch, TrialModel, utcnow
from service.spec import SweepSpec

__all__ = [
    "OBJECTIVES",
    "REQUIRED_METRICS",
    "Page",
    "ParetoFront",
    "add_trial",
    "cancel_sweep",
    "claim_next_pending_sweep",
    "configure_pareto_cache",
    "count_sweeps",
    "create_sweep",
    "finish_sweep",
    "get_sweep",
    "get_trial",
    "get_trial_model",
    "get_trial_model_file",
    "list_resumable_sweeps",
    "list_sweeps",
    "list_trial_epochs",
    "list_trials",
    "mark_trial_failed",
    "mark_trial_pending",
    "mark_trial_running",
    "pareto_front",
    "ping",
    "record_trial_epoch",
    "record_trial_result",
    "set_trial_pack",
    "sweep_counts",
    "sweep_counts_many",
    "sweep_spec",
]

T = TypeVar("T")

#: Objective name -> direction (DESIGN.md §5).
OBJECTIVES: dict[str, pareto.Direction] = {
    "accuracy": "maximize",
    "sparsity": "maximize",
    "flops": "minimize",
    "params": "minimize",
}
#: Measures a trial result must carry (DESIGN.md §4); the others are stored when given.
REQUIRED_METRICS = ("accuracy", "sparsity", "params", "params_dense", "flops", "flops_dense")
_FINISHED_SWEEP = ("completed", "failed", "cancelled")
_OPEN_TRIAL = ("pending", "running")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the total count of the unpaginated list."""

    items: list[T]
    total: int


@dataclass(frozen=True)
class ParetoFront:
    """The front of a sweep (DESIGN.md §5 shape; ``items`` are ORM trials, best first)."""

    objectives: list[str]
    directions: list[str]
    items: list[Trial]
    hypervolume: float


# ---------------------------------------------------------------- sweeps


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
        status="pending",
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
                            "status": "pending",
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
    counts = {sid: dict.fromkeys(TRIAL_STATUSES, 0) for sid in sweep_ids}
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
            .where(Sweep.status == "pending")
            .order_by(Sweep.created_at, Sweep.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if sweep_id is None:
            return None
        session.execute(
            update(Sweep)
            .where(Sweep.id == sweep_id)
            .values(status="running", runner_id=runner_id, started_at=now, updated_at=now)
        )
    else:
        oldest = (
            select(Sweep.id)
            .where(Sweep.status == "pending")
            .order_by(Sweep.created_at, Sweep.id)
            .limit(1)
            .scalar_subquery()
        )
        sweep_id = session.scalar(
            update(Sweep)
            .where(Sweep.id == oldest, Sweep.status == "pending")
            .values(status="running", runner_id=runner_id, started_at=now, updated_at=now)
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
    query = select(Sweep).where(Sweep.status == "running")
    if runner_id is not None:
        query = query.where(Sweep.runner_id == runner_id)
    return list(session.scalars(query.order_by(Sweep.created_at, Sweep.id)).all())


def cancel_sweep(session: Session, sweep_id: int) -> Sweep:
    """Cancel a pending or running sweep and its pending/running trials.

    Cancelling a cancelled sweep returns it unchanged; a completed or failed one raises
    :class:`ConflictError`. Runners poll ``get_sweep(...).status`` to stop.
    """
    sweep = _lock_sweep(session, sweep_id)
    if sweep.status == "cancelled":
        return sweep
    if sweep.status in _FINISHED_SWEEP:
        raise ConflictError(f"sweep {sweep_id} is already {sweep.status}")
    now = utcnow()
    session.execute(
        update(Trial)
        .where(Trial.sweep_id == sweep_id, Trial.status.in_(_OPEN_TRIAL))
        .values(status="cancelled", finished_at=now)
    )
    sweep.status = "cancelled"
    sweep.finished_at = now
    sweep.updated_at = now
    session.flush()
    return sweep


def finish_sweep(
    session: Session, sweep_id: int, *, status: str | None = None, error: str | None = None
) -> Sweep:
    """Mark a sweep finished.

    Without ``status``: ``failed`` when no trial completed and some failed, else
    ``completed``. A cancelled sweep stays cancelled.
    """
    sweep = _lock_sweep(session, sweep_id)
    if sweep.status == "cancelled":
        return sweep
    if status is None:
        counts = sweep_counts(session, sweep_id)
        status = "failed" if counts["completed"] == 0 and counts["failed"] > 0 else "completed"
    if status not in ("completed", "failed"):
        raise ValueError(f"a sweep finishes as completed or failed, not {status!r}")
    now = utcnow()
    sweep.status = status
    sweep.error = error
    sweep.finished_at = now
    sweep.updated_at = now
    session.flush()
    return sweep


def _lock_sweep(session: Session, sweep_id: int) -> Sweep:
    sweep = session.scalars(
        select(Sweep).where(Sweep.id == sweep_id).with_for_update()
    ).one_or_none()
    if sweep is None:
        raise NotFoundError(f"sweep {sweep_id} not found")
    return sweep


# ---------------------------------------------------------------- trials


def add_trial(
    session: Session,
    sweep_id: int,
    lam: float,
    beta: float,
    seed: int,
    *,
    pack: str | None = None,
) -> Trial:
    """Append a trial to a sweep (optuna strategy: as the sampler asks).

    Raises :class:`ConflictError` when the sweep is finished or already has ``n_trials``.
    """
    if pack is not None and len(pack) > 200:
        raise ValueError("a pack id has at most 200 characters")
    sweep = _lock_sweep(session, sweep_id)
    if sweep.status in _FINISHED_SWEEP:
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
        status="pending",
        pack=pack,
        epochs_done=0,
        created_at=utcnow(),
    )
    session.add(trial)
    session.flush()
    return trial


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
    """``pending``/``failed`` -> ``running`` on ``node``. A finished trial is left as it is."""
    trial = get_trial(session, trial_id)
    if trial.status in ("completed", "cancelled"):
        return trial
    trial.status = "running"
    trial.node = node[:200] if node else node  # the column's width; host names fit
    trial.error = None
    trial.started_at = utcnow()
    session.flush()
    return trial


def mark_trial_pending(session: Session, trial_id: int) -> Trial:
    """Put a running/failed trial back to ``pending`` (retry, crash resume).

    ``epochs_done`` and the epoch history are kept (the runner resumes from its
    checkpoint); a completed trial is left completed so no result is lost.
    """
    trial = get_trial(session, trial_id)
    if trial.status == "completed":
        return trial
    trial.status = "pending"
    trial.node = None
    trial.finished_at = None
    session.flush()
    return trial


def mark_trial_failed(session: Session, trial_id: int, error: str) -> Trial:
    """Mark a trial failed with ``error``; a completed trial keeps its result."""
    trial = get_trial(session, trial_id)
    if trial.status == "completed":
        return trial
    trial.status = "failed"
    trial.error = error[:10_000]
    trial.finished_at = utcnow()
    session.flush()
    return trial


def _as_mapping(row: Any) -> dict[str, Any]:
    if isinstance(row, Mapping):
        return dict(row)
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if hasattr(row, "as_dict"):
        return dict(row.as_dict())
    raise TypeError(f"expected a mapping or a dataclass, got {type(row).__name__}")


def _json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _insert_for(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


_EPOCH_COLUMNS = ("loss", "accuracy", "expected_l0", "expected_flops", "seconds")


def record_trial_epoch(session: Session, trial_id: int, row: Mapping[str, Any] | Any) -> None:
    """Store one epoch of a trial's history; recording the same epoch again overwrites it.

    Args:
        row: A mapping or dataclass (e.g. ``l0models.EpochRecord``) with ``epoch``
            (1-based) and any of loss, accuracy, expected_l0, expected_flops, seconds;
            other keys are kept in ``extra``.
    """
    data = _json_safe(_as_mapping(row))
    if "epoch" not in data:
        raise InvalidMetricsError("an epoch row needs 'epoch'")
    epoch = int(data.pop("epoch"))
    get_trial(session, trial_id)
    values = {c: _float_or_none(data.pop(c, None)) for c in _EPOCH_COLUMNS}
    values["extra"] = data or None
    stmt = _insert_for(session)(TrialEpoch).values(
        trial_id=trial_id, epoch=epoch, recorded_at=utcnow(), **values
    )
    session.execute(stmt.on_conflict_do_update(index_elements=["trial_id", "epoch"], set_=values))
    session.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.epochs_done < epoch)
        .values(epochs_done=epoch)
    )


def list_trial_epochs(session: Session, trial_id: int) -> list[TrialEpoch]:
    """The epoch history of a trial, in epoch order."""
    get_trial(session, trial_id)
    return list(
        session.scalars(
            select(TrialEpoch).where(TrialEpoch.trial_id == trial_id).order_by(TrialEpoch.epoch)
        ).all()
    )


def record_trial_result(
    session: Session,
    trial_id: int,
    metrics: Mapping[str, Any] | Any,
    model_bytes: bytes | None = None,
    *,
    filename: str | None = None,
) -> Trial:
    """Store a trial's final measures (DESIGN.md §4) and its compacted model; idempotent.

    The trial becomes ``completed`` (even if it was cancelled meanwhile: results are never
    thrown away). Calling it again replaces the result, so there is always one.

    Args:
        metrics: Mapping or dataclass with at least :data:`REQUIRED_METRICS`; ``error`` is
            derived from ``accuracy`` when absent.
        model_bytes: The TorchScript / exported-program file, or None.
        filename: Download name; default ``trial-<id>.pt``.
    """
    data = _json_safe(_as_mapping(metrics))
    missing = [k for k in REQUIRED_METRICS if data.get(k) is None]
    if missing:
        raise InvalidMetricsError(f"trial result lacks {', '.join(missing)}")
    if data.get("error") is None:
        data["error"] = 1.0 - float(data["accuracy"])
    trial = get_trial(session, trial_id)
    trial.metrics = data
    for column in REQUIRED_METRICS:
        setattr(trial, column, _float_or_none(data[column]))
    epochs = data.get("epochs")
    if isinstance(epochs, int) and epochs > trial.epochs_done:
        trial.epochs_done = epochs
    trial.status = "completed"
    trial.error = None
    trial.finished_at = utcnow()
    session.execute(
        update(Sweep)
        .where(Sweep.id == trial.sweep_id)
        .values(results_version=Sweep.results_version + 1)
        # No identity-map scan per result (O(n) with many loaded trials); expire instead.
        .execution_options(synchronize_session=False)
    )
    sweep = session.identity_map.get(session.identity_key(Sweep, trial.sweep_id))
    if sweep is not None:
        session.expire(sweep, ["results_version"])
    session.flush()
    if model_bytes is not None:
        values = {
            "data": bytes(model_bytes),
            "filename": filename or f"trial-{trial_id}.pt",
            "size": len(model_bytes),
            "sha256": hashlib.sha256(model_bytes).hexdigest(),
            "created_at": utcnow(),
        }
        stmt = _insert_for(session)(TrialModel).values(trial_id=trial_id, **values)
        session.execute(stmt.on_conflict_do_update(index_elements=["trial_id"], set_=values))
    return trial


def get_trial_model(session: Session, trial_id: int) -> bytes | None:
    """The stored model file of a trial, or None; raises :class:`NotFoundError`."""
    found = get_trial_model_file(session, trial_id)
    return None if found is None else found[1]


def get_trial_model_file(session: Session, trial_id: int) -> tuple[str, bytes] | None:
    """``(filename, bytes)`` of a trial's model, or None when it has none."""
    get_trial(session, trial_id)
    row = session.execute(
        select(TrialModel.filename, TrialModel.data).where(TrialModel.trial_id == trial_id)
    ).one_or_none()
    return None if row is None else (row[0], bytes(row[1]))


# ---------------------------------------------------------------- Pareto front


def pareto_front(
    session: Session,
    sweep_id: int,
    objectives: Sequence[str] = ("accuracy", "sparsity", "flops"),
    constraints: Mapping[str, float] | None = None,
) -> ParetoFront:
    """The non-dominated completed trials of a sweep and the front's hypervolume.

    Args:
        objectives: 2 or 3 distinct names of :data:`OBJECTIVES`.
        constraints: ``{"max_flops": x, "min_accuracy": y, ...}``: ``max_<objective>`` /
            ``min_<objective>`` bounds (inclusive); trials outside them are left out before
            the front is taken.

    The hypervolume uses minimised fractions in [0, 1] (error, 1 − sparsity,
    flops / flops_dense, params / params_dense) against the reference point (1, …, 1).
    """
    objectives = list(objectives)
    if not 2 <= len(objectives) <= 3 or len(set(objectives)) != len(objectives):
        raise ValueError("choose 2 or 3 distinct objectives")
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise ValueError(f"unknown objective(s) {', '.join(unknown)}")
    bounds = _parse_constraints(constraints or {})
    sweep = get_sweep(session, sweep_id)
    directions = [OBJECTIVES[o] for o in objectives]

    # The completed set only changes through record_trial_result, which bumps
    # results_version in the same transaction: a cached front for the version read here is
    # never older than the data (a result committed after this read bumps the version).
    key = (
        session.connection().engine.url.render_as_string(hide_password=True),
        sweep_id,
        sweep.created_at,  # a database recreated at the same URL reuses ids, not timestamps
        tuple(objectives),
        tuple(sorted(bounds.items())),
        sweep.results_version,
    )
    cached = _pareto_cache.get(key)
    if cached is None:
        cached = _compute_front(session, sweep_id, objectives, directions, bounds)
        _pareto_cache.put(key, cached)
    front_ids, volume = cached
    trials = {t.id: t for t in session.scalars(select(Trial).where(Trial.id.in_(front_ids)))}
    items = [trials[i] for i in front_ids if i in trials]
    return ParetoFront(objectives, list(directions), items, volume)


def _compute_front(
    session: Session,
    sweep_id: int,
    objectives: list[str],
    directions: list[pareto.Direction],
    bounds: dict[str, tuple[float | None, float | None]],
) -> tuple[tuple[int, ...], float]:
    """Front trial ids (best first on the first objective) and the hypervolume."""
    # Only the columns this front needs: its objectives, their dense sizes (for the
    # hypervolume fractions) and the constrained measures.
    dense = {"flops": "flops_dense", "params": "params_dense"}
    needed = list(dict.fromkeys([*objectives, *(dense[o] for o in objectives if o in dense)]))
    needed += [name for name in bounds if name not in needed]
    columns = [getattr(Trial, name) for name in needed]
    # Served by the covering index ix_trials_front (no table rows, no JSON read).
    rows = _fetch_tuples(
        session,
        select(Trial.id, *columns).where(Trial.sweep_id == sweep_id, Trial.status == "completed"),
    )
    if not rows:
        return (), 0.0
    data = np.array(rows, dtype=float).reshape(len(rows), len(needed) + 1)  # None -> NaN
    ids = data[:, 0].astype(np.int64)
    col = {name: data[:, i + 1] for i, name in enumerate(needed)}
    points = np.column_stack([col[o] for o in objectives])
    keep = ~np.isnan(points).any(axis=1)
    for name, (lo, hi) in bounds.items():
        if lo is not None:
            keep &= col[name] >= lo
        if hi is not None:
            keep &= col[name] <= hi
    if not keep.any():
        return (), 0.0
    mask = np.zeros(len(ids), dtype=bool)
    mask[keep] = pareto.nondominated_mask(points[keep], directions)
    front_ids, front_points = ids[mask], points[mask]
    front_col = {name: values[mask] for name, values in col.items()}

    fractions = np.column_stack([_fraction(front_col, o) for o in objectives])
    volume = pareto.hypervolume(np.clip(fractions, 0.0, 1.0), [1.0] * len(objectives))

    # Best first on the first objective, then the next ones.
    order = np.lexsort(pareto.to_minimisation(front_points, directions).T[::-1])
    return tuple(int(i) for i in front_ids[order]), volume


class _LRU:
    """A small thread-safe LRU of computed fronts (size 0 disables it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, tuple[tuple[int, ...], float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[tuple[int, ...], float] | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: tuple[tuple[int, ...], float]) -> None:
        with self._lock:
            if self.size <= 0:
                return
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def resize(self, size: int) -> None:
        with self._lock:
            self.size = size
            while len(self._data) > max(size, 0):
                self._data.popitem(last=False)


_pareto_cache = _LRU(256)


def configure_pareto_cache(size: int) -> None:
    """How many computed fronts to keep per process (0: compute every time)."""
    _pareto_cache.resize(size)


def _fetch_tuples(session: Session, stmt: Select[Any]) -> list[tuple[Any, ...]]:
    """Run a plain column select on the DBAPI cursor of the session's connection.

    For the 10k-row Pareto read: SQLAlchemy's per-row Result processing costs more than the
    query itself, and these columns (ints, floats) need no type processing.
    """
    connection = session.connection()
    compiled = stmt.compile(dialect=connection.dialect)
    params = compiled.construct_params()
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if connection.dialect.positional
        else params
    )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _fraction(col: Mapping[str, np.ndarray], objective: str) -> np.ndarray:
    """The objective as a minimised fraction in [0, 1] (DESIGN.md §5)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if objective == "accuracy":
            return 1.0 - col["accuracy"]
        if objective == "sparsity":
            return 1.0 - col["sparsity"]
        dense = col[f"{objective}_dense"]
        # A missing or zero dense size gives no credit (fraction 1).
        fraction = np.where(dense > 0, col[objective] / dense, 1.0)
        return np.where(np.isnan(fraction), 1.0, fraction)


def _parse_constraints(
    constraints: Mapping[str, float],
) -> dict[str, tuple[float | None, float | None]]:
    bounds: dict[str, tuple[float | None, float | None]] = {}
    for key, value in constraints.items():
        if value is None:
            continue
        kind, _, name = key.partition("_")
        if kind not in ("min", "max") or name not in OBJECTIVES:
            raise ValueError(f"unknown constraint {key!r} (use min_/max_ + an objective)")
        if not math.isfinite(float(value)):
            raise ValueError(f"constraint {key} must be finite")
        lo, hi = bounds.get(name, (None, None))
        bounds[name] = (float(value), hi) if kind == "min" else (lo, float(value))
    return bounds


def ping(session: Session) -> None:
    """Round-trip to the database (for /healthz)."""
    session.execute(text("SELECT 1"))
