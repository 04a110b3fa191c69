from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError

from api.deps import LimitDep, OffsetDep, ReadSessionDep, SessionDep, SettingsDep, TokenDep
from api.errors import ERROR_RESPONSES
from api.schemas import (
    ParetoFrontPublic,
    SweepCreate,
    SweepList,
    SweepPublic,
    TrialList,
    TrialPublic,
)
from service import repository as repo

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

SweepId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Bound = Annotated[float | None, Query(allow_inf_nan=False)]
_WRITE: dict[int | str, dict[str, Any]] = {k: ERROR_RESPONSES[k] for k in (400, 401, 413)}

_CANCEL: dict[int | str, dict[str, Any]] = {k: ERROR_RESPONSES[k] for k in (401, 404, 409, 413)}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepPublic,
    responses=_WRITE,
)
def create_sweep(
    body: SweepCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    _token: TokenDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Retrying with the same key returns the same sweep.",
        ),
    ] = None,
) -> SweepPublic:
    """Store a sweep and its trials (status ``pending``)."""
    body.check_limits(settings.max_trials_per_sweep)
    sweep = repo.create_sweep(session, body, idempotency_key=idempotency_key)
    response.headers["Location"] = f"/api/v1/sweeps/{sweep.id}"
    return SweepPublic.from_sweep(sweep, repo.sweep_counts(session, sweep.id))


@router.get("", response_model=SweepList)
def list_sweeps(session: ReadSessionDep, limit: LimitDep, offset: OffsetDep = 0) -> SweepList:
    """Sweeps, newest first."""
    page = repo.list_sweeps(session, limit=limit, offset=offset)
    counts = repo.sweep_counts_many(session, [s.id for s in page.items])
    return SweepList(
        items=[SweepPublic.from_sweep(s, counts[s.id]) for s in page.items], total=page.total
    )


@router.get("/{sweep_id}", response_model=SweepPublic, responses={404: ERROR_RESPONSES[404]})
def get_sweep(sweep_id: SweepId, session: ReadSessionDep) -> SweepPublic:
    """A sweep: spec, status, trial counts by status, timestamps."""
    sweep = repo.get_sweep(session, sweep_id)
    return SweepPublic.from_sweep(sweep, repo.sweep_counts(session, sweep_id))


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepPublic,
    responses=_CANCEL,
)
def cancel_sweep(sweep_id: SweepId, session: SessionDep, _token: TokenDep) -> SweepPublic:
    """Cancel a pending or running sweep and its unfinished trials (409 if finished)."""
    sweep = repo.cancel_sweep(session, sweep_id)
    return SweepPublic.from_sweep(sweep, repo.sweep_counts(session, sweep_id))


@router.get("/{sweep_id}/trials", response_model=TrialList, responses={404: ERROR_RESPONSES[404]})
def list_trials(
    sweep_id: SweepId,
    session: ReadSessionDep,
    limit: LimitDep,
    offset: OffsetDep = 0,
    status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = None,
) -> TrialList:
    """Trials of a sweep in grid order, with their measures once completed."""
    page = repo.list_trials(session, sweep_id, status=status, limit=limit, offset=offset)
    return TrialList(items=[TrialPublic.from_trial(t) for t in page.items], total=page.total)


@router.get(
    "/{sweep_id}/pareto",
    response_model=ParetoFrontPublic,
    responses={404: ERROR_RESPONSES[404]},
)
def pareto_front(
    sweep_id: SweepId,
    session: ReadSessionDep,
    objectives: Annotated[
        str,
        Query(
            description="2 or 3 of accuracy, sparsity, flops, params, comma-separated.",
            max_length=200,
        ),
    ] = "accuracy,sparsity,flops",
    min_accuracy: Bound = None,
    min_sparsity: Bound = None,
    max_flops: Bound = None,
    max_params: Bound = None,
) -> ParetoFrontPublic:
    """The non-dominated completed trials on the chosen objectives, and the hypervolume."""
    names = [o.strip() for o in objectives.split(",") if o.strip()]
    constraints = {
        "min_accuracy": min_accuracy,
        "min_sparsity": min_sparsity,
        "max_flops": max_flops,
        "max_params": max_params,
    }
    try:
        front = repo.pareto_front(
            session,
            sweep_id,
            names,
            {k: v for k, v in constraints.items() if v is not None},
        )
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "objectives"), "msg": str(exc)}]
        ) from exc
    return ParetoFrontPublic(
        objectives=front.objectives,
        directions=front.directions,
        items=[TrialPublic.from_trial(t) for t in front.items],
        hypervolume=front.hypervolume,
    )
