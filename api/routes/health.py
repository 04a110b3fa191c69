from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReadSessionDep
from api.schemas import HealthPublic
from service import repository as repo

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthPublic,
    responses={503: {"description": "Database unreachable"}},
)
def healthz(session: ReadSessionDep) -> HealthPublic:
    """Liveness: the process answers and the database is reachable."""
    repo.ping(session)
    return HealthPublic(status="ok", database="ok")
