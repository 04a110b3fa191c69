"""The FastAPI app: ``uvicorn api.main:app`` (configured from ``L0SWEEP_*`` env vars)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.errors import install_error_handlers
from api.middleware import BodySizeLimitMiddleware
from api.routes import api_router
from api.state import AppState
from service import repository
from service.db import upgrade_database, wait_for_database
from service.settings import Settings, get_settings

__all__ = ["app", "create_app"]

log = logging.getLogger("api")


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the API app.

    Args:
        settings: Defaults to :func:`service.settings.get_settings` (the environment).
        engine: Use this engine instead of one built from ``settings.database_url``.

    On start-up (lifespan) it waits for the database, applies the Alembic migrations (unless
    ``migrate_on_startup`` is off) and, in dev with no configured tokens, prints the
    generated one.
    """
    settings = settings or get_settings()
    state = AppState(settings, engine)
    repository.configure_pareto_cache(settings.pareto_cache_size)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
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
        # Move the start-up objects (modules, ORM and route tables) out of the collector's
        # reach: a full collection over them otherwise lands in the p99 of large reads.
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
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


app = create_app()
