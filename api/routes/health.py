from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import DatabaseDep
from api.errors import database_unavailable
from api.schemas import HealthPublic
from service import repository as repo
from service.errors import StorageError

router = APIRouter(tags=["health"])

_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The database is unreachable or its connections are all busy; "
        '`{"detail": "database unavailable", "status": "unavailable", "api": "ok", '
        '"database": "unreachable" | "busy"}` with Retry-After.'
    }
}


@router.get("/healthz", response_model=HealthPublic, responses=_UNAVAILABLE)
@router.head("/healthz", response_model=HealthPublic, include_in_schema=False)
def healthz(db: DatabaseDep) -> HealthPublic | JSONResponse:
    """Liveness: the process answers and the database is reachable; 503 says which is down."""
    try:
        with db.read() as session:
            repo.ping(session)
    except StorageError as exc:
        return database_unavailable(exc, health=True)
    return HealthPublic(status="ok", api="ok", database="ok")
