"""SQLAlchemy 2.0 typed ORM models: sweeps, trials, per-epoch history, trial models."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "SWEEP_STATUSES",
    "TRIAL_STATUSES",
    "Base",
    "Sweep",
    "Trial",
    "TrialEpoch",
    "TrialModel",
    "utcnow",
]

SWEEP_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TRIAL_STATUSES = ("pending", "running", "completed", "failed", "cancelled")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on PostgreSQL; SQLite needs exactly INTEGER for an auto-increment rowid.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class Sweep(Base):
    """One submitted sweep. ``spec`` is the validated SweepSpec as JSON."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    strategy: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]]
    spec_hash: Mapped[str] = mapped_column(String(64))
    n_trials: Mapped[int] = mapped_column(Integer)
    # Bumped by every recorded trial result: the Pareto cache key (a changed completed set).
    results_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    runner_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    trials: Mapped[list[Trial]] = relationship(
        back_populates="sweep", order_by="Trial.number", passive_deletes=True
    )


class Trial(Base):
    """One (λ, β, seed) configuration of a sweep.

    The objective measures are copied out of ``metrics`` into columns so the Pareto front of
    a 10k-trial sweep reads a few numeric columns instead of parsing JSON.
    """

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("sweep_id", "number"),
        Index("ix_trials_sweep_id_status", "sweep_id", "status"),
        # Covering index of the Pareto query: the front of a 10k-trial sweep is read from
        # the index alone, not from table pages full of metrics JSON.
        Index(
            "ix_trials_front",
            "sweep_id",
            "status",
            "accuracy",
            "sparsity",
            "flops",
            "params",
            "flops_dense",
            "params_dense",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    # Position in the sweep, 0-based (grid order; optuna: the order the sampler asked).
    number: Mapped[int] = mapped_column(Integer)
    lam: Mapped[float] = mapped_column(Float)
    beta: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Fused-pack / group identifier (issue 5): trials trained together in one batched model.
    pack: Mapped[str | None] = mapped_column(String(200))
    node: Mapped[str | None] = mapped_column(String(200))
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None]
    accuracy: Mapped[float | None] = mapped_column(Float)
    sparsity: Mapped[float | None] = mapped_column(Float)
    params: Mapped[float | None] = mapped_column(Float)
    params_dense: Mapped[float | None] = mapped_column(Float)
    flops: Mapped[float | None] = mapped_column(Float)
    flops_dense: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    sweep: Mapped[Sweep] = relationship(back_populates="trials")


class TrialEpoch(Base):
    """Per-epoch history of a trial; one row per (trial_id, epoch)."""

    __tablename__ = "trial_epochs"
    __table_args__ = (UniqueConstraint("trial_id", "epoch"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    expected_l0: Mapped[float | None] = mapped_column(Float)
    expected_flops: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict[str, Any] | None]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrialModel(Base):
    """The compacted model file of a completed trial (one per trial)."""

    __tablename__ = "trial_models"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
