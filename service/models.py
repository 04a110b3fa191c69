"""SQLAlchemy 2.0 typed ORM models: sweeps, trials, per-epoch history, trial models."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
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

from service.vocabulary import ModelFormat, SweepStatus, TrialStatus

__all__ = [
    "Base",
    "PackCheckpoint",
    "Runner",
    "Sweep",
    "Trial",
    "TrialEpoch",
    "TrialModel",
    "utcnow",
]

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
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class VocabularyString(TypeDecorator[E]):
    """A :mod:`service.vocabulary` enum stored as its value in a VARCHAR(16).

    Reads give the enum member; writes accept the member or its string and refuse anything
    else before the database's CHECK constraint would.
    """

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def status_check(enum: type[StrEnum]) -> CheckConstraint:
    """``status IN (...)`` over the values of ``enum``, named ``ck_<table>_status``."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"status IN ({values})", name="status")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class Sweep(Base):
    """One submitted sweep. ``spec`` is the validated SweepSpec as JSON."""

    __tablename__ = "sweeps"
    __table_args__ = (status_check(SweepStatus),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[SweepStatus] = mapped_column(
        VocabularyString(SweepStatus), default=SweepStatus.PENDING, index=True
    )
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
        status_check(TrialStatus),
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
    # The weight decay it trains with (migration 0006): the spec's one value, or its own
    # when training.weight_decay is a list. Null only on rows of older code.
    weight_decay: Mapped[float | None] = mapped_column(Float)
    status: Mapped[TrialStatus] = mapped_column(
        VocabularyString(TrialStatus), default=TrialStatus.PENDING
    )
    # Fused-pack / group identifier (issue 5): trials trained together in one batched model.
    pack: Mapped[str | None] = mapped_column(String(200))
    node: Mapped[str | None] = mapped_column(String(200))
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    # The epoch an early-stopped trial (status ``stopped``) stopped at, its measures and
    # model files being that epoch's (migration 0007); null for every other trial.
    stopped_epoch: Mapped[int | None] = mapped_column(Integer)
    # The epoch a budget-search probe is planned to stop at (migration 0008); null: the
    # spec's epochs. A resumed probe stops there too.
    stop_at: Mapped[int | None] = mapped_column(Integer)
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
    """A compacted model file of a completed trial: one row per (trial, format).

    A format the trial could not be exported to has a row with ``error`` (the reason the
    API gives with its 409) and no data (migration 0005).
    """

    __tablename__ = "trial_models"
    __table_args__ = (
        CheckConstraint(
            "format IN ({})".format(", ".join(f"'{f.value}'" for f in ModelFormat)),
            name="format",
        ),
        CheckConstraint("(data IS NULL) <> (error IS NULL)", name="data_or_error"),
    )

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    format: Mapped[ModelFormat] = mapped_column(
        VocabularyString(ModelFormat), primary_key=True, default=ModelFormat.TORCHSCRIPT
    )
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Runner(Base):
    """A live (or once live) runner process and its heartbeat (issue 9).

    ``sweeps.runner_id`` names the runner that runs a sweep; a ``running`` sweep whose
    runner's ``heartbeat_at`` is older than ``L0SWEEP_RUNNER_TIMEOUT_S`` (or that has no row
    here) is taken over by another runner.
    """

    __tablename__ = "runners"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class PackCheckpoint(Base):
    """The latest Ray Tune checkpoint of an unfinished pack: the resume index (issue 9).

    In the database, so any runner that takes a sweep over continues its packs from their
    checkpoints. ``pack_key`` is the members' trial ids joined by commas; ``trial_ids`` the
    same ids in pack order (the order of the checkpointed state).
    """

    __tablename__ = "pack_checkpoints"
    __table_args__ = (UniqueConstraint("sweep_id", "pack_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    pack_key: Mapped[str] = mapped_column(String(64))
    trial_ids: Mapped[list[int]] = mapped_column(JSON)
    checkpoint: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
