"""Request and response schemas of the REST API (DESIGN.md §5).

Requests and responses are separate models so database rows never leak as the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.models import Sweep, Trial
from service.spec import SweepSpec

__all__ = [
    "ErrorPublic",
    "HealthPublic",
    "ParetoFrontPublic",
    "StatusCounts",
    "SweepCreate",
    "SweepList",
    "SweepPublic",
    "TrialEpochPublic",
    "TrialHistory",
    "TrialList",
    "TrialMetrics",
    "TrialPublic",
]

Status = Literal["pending", "running", "completed", "failed", "cancelled"]


class SweepCreate(SweepSpec):
    """Body of ``POST /sweeps``: a SweepSpec."""


class ErrorPublic(BaseModel):
    detail: str


class StatusCounts(BaseModel):
    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


class SweepPublic(BaseModel):
    id: int
    name: str
    status: Status
    spec: dict[str, Any] = Field(description="The stored SweepSpec, defaults filled in.")
    n_trials: int
    counts: StatusCounts
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = None

    @classmethod
    def from_sweep(cls, sweep: Sweep, counts: dict[str, int]) -> SweepPublic:
        return cls(
            id=sweep.id,
            name=sweep.name,
            status=sweep.status,
            spec=sweep.spec,
            n_trials=sweep.n_trials,
            counts=StatusCounts(**counts),
            created_at=sweep.created_at,
            started_at=sweep.started_at,
            finished_at=sweep.finished_at,
            error=sweep.error,
        )


class SweepList(BaseModel):
    items: list[SweepPublic]
    total: int


def _count(value: Any) -> Any:
    # Counts come back as JSON numbers; show whole ones as integers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class TrialMetrics(BaseModel):
    """The measures of DESIGN.md §4 (extra measures a worker reports are passed through)."""

    model_config = ConfigDict(extra="allow")

    accuracy: float
    error: float
    sparsity: float
    params: int | float
    params_dense: int | float
    flops: int | float
    flops_dense: int | float
    expected_flops: float | None = None
    expected_l0: float | None = None
    architecture: list[int] | None = None


class TrialPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    sweep_id: int
    number: int
    status: Status
    lambda_: float = Field(alias="lambda")
    beta: float
    seed: int
    epochs_done: int
    node: str | None
    pack: str | None = None
    error: str | None = None
    metrics: TrialMetrics | None

    @classmethod
    def from_trial(cls, trial: Trial) -> TrialPublic:
        metrics = None
        if trial.metrics is not None:
            metrics = TrialMetrics.model_validate({k: _count(v) for k, v in trial.metrics.items()})
        return cls(
            id=trial.id,
            sweep_id=trial.sweep_id,
            number=trial.number,
            status=trial.status,
            lambda_=trial.lam,
            beta=trial.beta,
            seed=trial.seed,
            epochs_done=trial.epochs_done,
            node=trial.node,
            pack=trial.pack,
            error=trial.error,
            metrics=metrics,
        )


class TrialList(BaseModel):
    items: list[TrialPublic]
    total: int


class TrialEpochPublic(BaseModel):
    """One row of a trial's per-epoch history (DESIGN §4)."""

    model_config = ConfigDict(from_attributes=True)

    epoch: int
    loss: float | None
    accuracy: float | None = Field(description="Test accuracy with test-time gates.")
    expected_l0: float | None
    expected_flops: float | None
    seconds: float | None


class TrialHistory(BaseModel):
    trial_id: int
    items: list[TrialEpochPublic]
    total: int


class ParetoFrontPublic(BaseModel):
    objectives: list[str]
    directions: list[Literal["maximize", "minimize"]]
    items: list[TrialPublic]
    hypervolume: float = Field(
        description="Hypervolume of the front on minimised fractions in [0, 1] (error, "
        "1 - sparsity, flops/flops_dense, params/params_dense) against (1, ..., 1)."
    )


class HealthPublic(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
