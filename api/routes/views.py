"""Read-only views the dashboard watches (additions to DESIGN.md §5; no existing shape
changes): one trial, the trial-epoch progress of several sweeps, and the front's
hypervolume over time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from api.deps import Bound, DatabaseDep, IdPath, ObjectivesQuery
from api.errors import ERROR_RESPONSES
from api.schemas import TrialPublic
from service import repository as repo
from service.repository.fronts import hypervolume_history
from service.repository.progress import sweep_epoch_progress
from service.vocabulary import Objective

__all__ = [
    "HypervolumeHistoryPublic",
    "HypervolumePointPublic",
    "SweepProgressList",
    "SweepProgressPublic",
    "router",
]

router = APIRouter()

Id = IdPath
MAX_PROGRESS_IDS = 200


class SweepProgressPublic(BaseModel):
    sweep_id: int
    epochs_done: int = Field(
        description="Trial-epochs trained so far; an early-stopped trial counts all the "
        "spec's epochs (it is done)."
    )
    epochs_total: int = Field(description="n_trials × the spec's epochs.")


class SweepProgressList(BaseModel):
    items: list[SweepProgressPublic]
    total: int


class HypervolumePointPublic(BaseModel):
    completed: int = Field(
        description="Trials with a result (completed or stopped) so far, in finishing order."
    )
    finished_at: datetime | None = Field(description="When the last of them finished.")
    hypervolume: float


class HypervolumeHistoryPublic(BaseModel):
    objectives: list[Objective]
    items: list[HypervolumePointPublic]
    total: int


@router.get(
    "/trials/{trial_id}",
    response_model=TrialPublic,
    responses={404: ERROR_RESPONSES[404]},
    tags=["trials"],
)
def get_trial(trial_id: Id, db: DatabaseDep) -> TrialPublic:
    """One trial: λ, β, seed, status, epochs done, node and its measures once completed."""
    with db.read() as session:
        return TrialPublic.from_trial(repo.get_trial(session, trial_id))


@router.get("/progress", response_model=SweepProgressList, tags=["sweeps"])
def sweeps_progress(
    db: DatabaseDep,
    sweep_ids: Annotated[
        str,
        Query(
            description=f"Up to {MAX_PROGRESS_IDS} sweep ids, comma-separated; unknown ids "
            "are left out.",
            max_length=4000,
        ),
    ],
) -> SweepProgressList:
    """Trial-epochs done and planned per sweep, for progress bars."""
    ids = _parse_ids(sweep_ids)
    with db.read() as session:
        progress = sweep_epoch_progress(session, ids)
    items = [
        SweepProgressPublic(
            sweep_id=p.sweep_id, epochs_done=p.epochs_done, epochs_total=p.epochs_total
        )
        for p in progress
    ]
    return SweepProgressList(items=items, total=len(items))


def _parse_ids(raw: str) -> list[int]:
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        ids = [-1]
    if any(not 1 <= i <= 2**63 - 1 for i in ids) or len(ids) > MAX_PROGRESS_IDS:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "sweep_ids"),
                    "msg": f"up to {MAX_PROGRESS_IDS} positive integer ids, comma-separated",
                }
            ]
        )
    return ids


@router.get(
    "/sweeps/{sweep_id}/pareto/history",
    response_model=HypervolumeHistoryPublic,
    responses={404: ERROR_RESPONSES[404]},
    tags=["sweeps"],
)
def pareto_history(
    sweep_id: Id,
    db: DatabaseDep,
    objectives: ObjectivesQuery = "accuracy,sparsity,flops",
    min_accuracy: Bound = None,
    min_sparsity: Bound = None,
    max_flops: Bound = None,
    max_params: Bound = None,
    max_points: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> HypervolumeHistoryPublic:
    """The front's hypervolume (as in ``/pareto``) after each completed trial, in finishing
    order, thinned to ``max_points``; the last point equals ``/pareto``'s hypervolume."""
    names = [o.strip() for o in objectives.split(",") if o.strip()]
    constraints = {
        "min_accuracy": min_accuracy,
        "min_sparsity": min_sparsity,
        "max_flops": max_flops,
        "max_params": max_params,
    }
    try:
        with db.read() as session:
            history = hypervolume_history(
                session,
                sweep_id,
                names,
                {k: v for k, v in constraints.items() if v is not None},
                max_points=max_points,
            )
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "objectives"), "msg": str(exc)}]
        ) from exc
    items = [
        HypervolumePointPublic(
            completed=p.completed, finished_at=p.finished_at, hypervolume=p.hypervolume
        )
        for p in history
    ]
    return HypervolumeHistoryPublic(
        objectives=[Objective(n) for n in names], items=items, total=len(items)
    )
