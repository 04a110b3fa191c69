"""The FastAPI app, configured from ``L0SWEEP_*`` env vars when served.

Serve it with ``uvicorn --factory api.main:create_served_app`` or ``uvicorn api.main:app``.
Importing this module builds nothing: ``app`` is made on first access (PEP 562), and tests
build their own apps with :func:`create_app`.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.dashboard import install_dashboard
from api.errors import install_error_handlers
from api.metrics import install_metrics
from api.middleware import BodySizeLimitMiddleware
from api.routes import api_router
from api.state import AppState
from service.db import upgrade_database, wait_for_database
from service.logs import configure_logging
from service.settings import Settings, get_settings

__all__ = ["create_app", "create_served_app"]

log = logging.getLogger("api")


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, freeze_gc: bool = False
) -> FastAPI:
    """Build the API app.

    Args:
        settings: Defaults to :func:`service.settings.get_settings` (the environment).
        engine: Use this engine instead of one built from ``settings.database_url``.
        freeze_gc: Call :func:`gc.freeze` once start-up is done (the served process only:
            see :func:`create_served_app`).

    On start-up (lifespan) it waits for the database, applies the Alembic migrations (unless
    ``migrate_on_startup`` is off) and, in dev with no configured tokens, prints the
    generated one.
    """
    settings = settings or get_settings()
    state = AppState(settings, engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Sync routes run on anyio's worker threads: as many as the pool has connections
        # (settings.api_threads), so a thread never waits for one (issue 10).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        await run_in_threadpool(wait_for_database, state.engine)
        if settings.migrate_on_startup:
            await run_in_threadpool(upgrade_database, state.engine)
        tokens = await run_in_threadpool(lambda: state.tokens)
        if not settings.api_tokens:
            print(
                f"l0sweep API: writes need 'Authorization: Bearer {tokens[0]}' "
                f"(stored in {settings.data_dir / 'api_token'})",
                flush=True,
            )
        if freeze_gc:
            # Move the start-up objects (modules, ORM and route tables) out of the
            # collector's reach: a full collection over them otherwise lands in the p99 of
            # large reads (uncached pareto p99 70.6 -> 21-25 ms, docs/benchmarks.md).
            gc.freeze()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="l0sweep",
        version="1",
        summary="Sweeps of L0-regularised sparse networks and their Pareto fronts.",
        lifespan=lifespan,
    )
    app.state.l0sweep = state
    app.include_router(api_router)
    install_dashboard(app)
    install_metrics(app, state)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


def create_served_app() -> FastAPI:
    """The app a server process runs: settings from the environment, ``gc.freeze()`` after
    start-up, log lines as ``L0SWEEP_LOG_FORMAT`` says. ``uvicorn --factory
    api.main:create_served_app``."""
    settings = get_settings()
    configure_logging(settings.log_format)
    return create_app(settings, freeze_gc=True)


@functools.cache
def _served_app() -> FastAPI:
    return create_served_app()


def __getattr__(name: str) -> FastAPI:
    # ``uvicorn api.main:app``: built on first access, once per process, not at import.
    if name == "app":
        return _served_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
