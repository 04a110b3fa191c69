"""Dependencies as ``Annotated`` aliases: a route just declares the parameter."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.state import AppState
from service.db import session_scope
from service.repository import FrontCache
from service.settings import Settings

__all__ = [
    "DatabaseDep",
    "FrontCacheDep",
    "LimitDep",
    "OffsetDep",
    "ReadSessionDep",
    "SessionDep",
    "SettingsDep",
    "StateDep",
    "TokenDep",
]


# The small dependencies are ``async def``: they run on the event loop, so a request takes
# one worker thread (its route), not one per dependency.


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.l0sweep
    return state


StateDep = Annotated[AppState, Depends(get_state)]
#: The app's database: ``with db.read() as session:`` / ``db.write()`` inside the route.
DatabaseDep = StateDep


async def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_front_cache(state: StateDep) -> FrontCache:
    return state.front_cache


FrontCacheDep = Annotated[FrontCache, Depends(get_front_cache)]


def get_session(state: StateDep) -> Iterator[Session]:
    """A write unit of work, committed before the response is sent.

    Prefer :data:`DatabaseDep`: a session from a dependency keeps its connection until the
    response is serialised, which needs another worker thread (see ``AppState.read``).
    """
    with session_scope(state.engine) as session:
        yield session


def get_read_session(state: StateDep) -> Iterator[Session]:
    """A read-only unit of work (never takes SQLite's write lock). Prefer DatabaseDep."""
    with session_scope(state.engine, readonly=True) as session:
        yield session


# scope="function": the session commits when the route returns, before the response goes out.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]

bearer_scheme = HTTPBearer(auto_error=False, description="A token from L0SWEEP_API_TOKENS.")


async def require_token(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The bearer token of a write request; 401 when missing or unknown."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        given = credentials.credentials.encode()
        # Compare with every token so timing does not tell which one matched.
        matches = [secrets.compare_digest(given, t.encode()) for t in state.tokens]
        if any(matches):
            return credentials.credentials
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


TokenDep = Annotated[str, Depends(require_token)]


async def get_limit(settings: SettingsDep, limit: Annotated[int | None, Query(ge=1)] = None) -> int:
    """Page size: ``default_page_limit`` when absent, at most ``max_page_limit``."""
    if limit is None:
        return settings.default_page_limit
    return min(limit, settings.max_page_limit)


LimitDep = Annotated[int, Depends(get_limit)]
OffsetDep = Annotated[int, Query(ge=0, le=2**62)]


# Query and path types shared by the routes that read fronts (sweeps.py, views.py).
IdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]
Bound = Annotated[float | None, Query(allow_inf_nan=False)]
ObjectivesQuery = Annotated[
    str,
    Query(
        description="2 or 3 of accuracy, sparsity, flops, params, comma-separated.",
        max_length=200,
    ),
]
