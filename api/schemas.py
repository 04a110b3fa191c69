"""Request and response schemas of the REST API (DESIGN.md §5).

Requests and responses are separate models so database rows never leak as the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from service.models import Sweep, Trial
from service.spec import SweepSpec
from service.vocabulary import Direction, Objective, SweepStatus, TrialStatus

__all__ = [
    "ErrorPublic",
    "FrontTrialPublic",
    "HealthPublic",
    "ParetoFrontPublic",
    "PresetList",
    "PresetPaper",
    "PresetPublic",
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
    stopped: int = Field(default=0, description="Early-stopped trials (issue 13).")


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
    accuracy_raw: float | None = Field(
        default=None,
        description="Test accuracy of the raw parameters; accuracy is the averaged ones' "
        "when training.ema is set (equal otherwise).",
    )


class TrialPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    sweep_id: int
    number: int
    status: TrialStatus
    lambda_: float = Field(alias="lambda")
    beta: float
    seed: int
    weight_decay: float | None = Field(
        default=None, description="The weight decay this trial trains with."
    )
    epochs_done: int
    stopped_epoch: int | None = Field(
        default=None,
        description="Status stopped: the epoch it was early-stopped at (its measures and "
        "model files are that epoch's); null otherwise.",
    )
    node: str | None
    pack: str | None = None
    error: str | None = None
    metrics: TrialMetrics | None

    @classmethod
    def from_trial(cls, trial: Trial) -> Self:
        return cls(**_trial_fields(trial))


def _trial_fields(trial: Trial) -> dict[str, Any]:
    metrics = None
    if trial.metrics is not None:
        metrics = TrialMetrics.model_validate({k: _count(v) for k, v in trial.metrics.items()})
    return dict(
        id=trial.id,
        sweep_id=trial.sweep_id,
        number=trial.number,
        status=trial.status,
        lambda_=trial.lam,
        beta=trial.beta,
        seed=trial.seed,
        weight_decay=trial.weight_decay,
        epochs_done=trial.epochs_done,
        stopped_epoch=trial.stopped_epoch,
        node=trial.node,
        pack=trial.pack,
        error=trial.error,
        metrics=metrics,
    )


class FrontTrialPublic(TrialPublic):
    """A trial on a Pareto front: the trial, and whether it was early-stopped."""

    stopped: bool = Field(description="True for an early-stopped trial (status stopped).")

    @classmethod
    def from_trial(cls, trial: Trial) -> Self:
        return cls(**_trial_fields(trial), stopped=trial.status == TrialStatus.STOPPED)


class TrialList(BaseModel):
    items: list[TrialPublic]
    total: int


class SweepPublic(BaseModel):
    id: int
    name: str
    status: SweepStatus
    spec: dict[str, Any] = Field(description="The stored SweepSpec, defaults filled in.")
    n_trials: int
    counts: StatusCounts
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = None
    best: TrialPublic | None = Field(
        default=None,
        description="Budget sweeps: the most accurate completed trial that meets "
        "search.constraint (budget probes and early-stopped trials are not answers); null "
        "when none does, and for other strategies.",
    )

    @classmethod
    def from_sweep(
        cls, sweep: Sweep, counts: dict[str, int], best: Trial | None = None
    ) -> SweepPublic:
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
            best=None if best is None else TrialPublic.from_trial(best),
        )


class SweepList(BaseModel):
    items: list[SweepPublic]
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
    objectives: list[Objective]
    directions: list[Direction]
    items: list[FrontTrialPublic]
    hypervolume: float = Field(
        description="Hypervolume of the front on minimised fractions in [0, 1] (error, "
        "1 - sparsity, flops/flops_dense, params/params_dense) against (1, ..., 1)."
    )


class HealthPublic(BaseModel):
    status: Literal["ok"]
    api: Literal["ok"] = "ok"
    database: Literal["ok"]


class PresetPaper(BaseModel):
    """What the paper reports for a preset's experiment."""

    error: float = Field(description="Test error in %.")
    architecture: str = Field(description="Kept units per gated layer, e.g. 219-214-100.")
    source: str = Field(description="Where in the paper, e.g. Table 1.")


class PresetPublic(BaseModel):
    """One of the paper's experiments as a ready sweep spec (``GET /presets/{name}``)."""

    name: str
    title: str
    description: str = Field(description="The recipe, and what could not be established.")
    spec: dict[str, Any] = Field(description="A SweepSpec (defaults filled in) to POST.")
    paper: PresetPaper


class PresetList(BaseModel):
    items: list[PresetPublic]
    total: int
