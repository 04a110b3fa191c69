from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from api.deps import (
    Bound,
    DatabaseDep,
    IdPath,
    LimitDep,
    ObjectivesQuery,
    OffsetDep,
    SettingsDep,
    TokenDep,
)
from api.errors import ERROR_RESPONSES
from api.schemas import (
    FrontTrialPublic,
    ParetoFrontPublic,
    SweepCreate,
    SweepList,
    SweepPublic,
    TrialList,
    TrialPublic,
)
from api.state import AppState
from service import repository as repo
from service.models import Sweep
from service.vocabulary import TrialStatus

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

SweepId = IdPath
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
    db: DatabaseDep,
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
    body.check_limits(
        settings.max_trials_per_sweep, max_params_per_trial=settings.max_params_per_trial
    )
    with db.write() as session:
        sweep = repo.create_sweep(session, body, idempotency_key=idempotency_key)
        created = _public(session, sweep)
    response.headers["Location"] = f"/api/v1/sweeps/{created.id}"
    return created


# The read routes are ``async``: they hand the database work to one worker thread through
# ``db.read_json`` (identical concurrent reads share it) and send its bytes as they are.


@router.get("", response_model=SweepList)
async def list_sweeps(db: DatabaseDep, limit: LimitDep, offset: OffsetDep = 0) -> Response:
    """Sweeps, newest first."""

    def build() -> SweepList:
        with db.read() as session:
            page = repo.list_sweeps(session, limit=limit, offset=offset)
            counts = repo.sweep_counts_many(session, [s.id for s in page.items])
            best = repo.best_trials(session, page.items)
            items = [SweepPublic.from_sweep(s, counts[s.id], best[s.id]) for s in page.items]
            return SweepList(items=items, total=page.total)

    return _json(await db.read_json(("sweeps", limit, offset), build))


@router.get("/{sweep_id}", response_model=SweepPublic, responses={404: ERROR_RESPONSES[404]})
async def get_sweep(sweep_id: SweepId, db: DatabaseDep) -> Response:
    """A sweep: spec, status, trial counts by status, timestamps, and a budget sweep's
    ``best`` trial."""

    def build() -> SweepPublic:
        with db.read() as session:
            return _public(session, repo.get_sweep(session, sweep_id))

    return _json(await db.read_json(("sweep", sweep_id), build))


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepPublic,
    responses=_CANCEL,
)
def cancel_sweep(sweep_id: SweepId, db: DatabaseDep, _token: TokenDep) -> SweepPublic:
    """Cancel a pending or running sweep and its unfinished trials (409 if finished)."""
    with db.write() as session:
        return _public(session, repo.cancel_sweep(session, sweep_id))


@router.get("/{sweep_id}/trials", response_model=TrialList, responses={404: ERROR_RESPONSES[404]})
async def list_trials(
    sweep_id: SweepId,
    db: DatabaseDep,
    limit: LimitDep,
    offset: OffsetDep = 0,
    status: TrialStatus | None = None,
) -> Response:
    """Trials of a sweep in grid order, with their measures once completed."""

    def build() -> TrialList:
        with db.read() as session:
            page = repo.list_trials(session, sweep_id, status=status, limit=limit, offset=offset)
            items = [TrialPublic.from_trial(t) for t in page.items]
            return TrialList(items=items, total=page.total)

    return _json(await db.read_json(("trials", sweep_id, limit, offset, status), build))


@router.get(
    "/{sweep_id}/pareto",
    response_model=ParetoFrontPublic,
    responses={404: ERROR_RESPONSES[404]},
)
async def pareto_front(
    sweep_id: SweepId,
    db: DatabaseDep,
    objectives: ObjectivesQuery = "accuracy,sparsity,flops",
    min_accuracy: Bound = None,
    min_sparsity: Bound = None,
    max_flops: Bound = None,
    max_params: Bound = None,
) -> Response:
    """The non-dominated completed trials on the chosen objectives, and the hypervolume.

    A front read in the last ``pareto_fresh_s`` seconds is answered from memory, on the
    event loop, without a worker thread or a database connection.
    """
    names = tuple(o.strip() for o in objectives.split(",") if o.strip())
    constraints = {
        "min_accuracy": min_accuracy,
        "min_sparsity": min_sparsity,
        "max_flops": max_flops,
        "max_params": max_params,
    }
    bounds = {k: v for k, v in constraints.items() if v is not None}
    key = (sweep_id, names, tuple(sorted(bounds.items())))
    body = db.fresh_fronts.get(key)
    if body is None:
        body = await db.read_json(("pareto", *key), lambda: _read_front(db, *key))
        db.fresh_fronts.put(key, body)
    return _json(body)


def _read_front(
    db: AppState, sweep_id: int, names: tuple[str, ...], bounds: tuple[tuple[str, float], ...]
) -> ParetoFrontPublic:
    try:
        with db.read() as session:
            front = repo.pareto_front(session, sweep_id, names, dict(bounds), cache=db.front_cache)
            return ParetoFrontPublic(
                objectives=front.objectives,
                directions=front.directions,
                items=[FrontTrialPublic.from_trial(t) for t in front.items],
                hypervolume=front.hypervolume,
            )
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "objectives"), "msg": str(exc)}]
        ) from exc


def _public(session: Session, sweep: Sweep) -> SweepPublic:
    """The sweep's REST shape: its counts and (budget sweeps) its best trial."""
    counts = repo.sweep_counts(session, sweep.id)
    return SweepPublic.from_sweep(sweep, counts, repo.best_trial(session, sweep))


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")
