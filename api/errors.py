"""Service errors -> HTTP responses, in FastAPI's ``{"detail": ...}`` shape."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.schemas import ErrorPublic
from service.errors import (
    ConflictError,
    IdempotencyKeyReusedError,
    NotFoundError,
    SpecLimitError,
    StorageError,
)

__all__ = ["ERROR_RESPONSES", "install_error_handlers", "validation_error"]

log = logging.getLogger("api")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorPublic, "description": "Body that cannot be parsed (e.g. not UTF-8)"},
    401: {"model": ErrorPublic, "description": "Missing or invalid bearer token"},
    404: {"model": ErrorPublic, "description": "Unknown id"},
    409: {"model": ErrorPublic, "description": "Conflicts with the current state"},
    413: {"model": ErrorPublic, "description": "Request body over the size limit"},
}


def validation_error(loc: list[str | int], msg: str) -> JSONResponse:
    """A 422 shaped like FastAPI's request validation errors."""
    return JSONResponse(
        status_code=422,
        content={"detail": [{"type": "value_error", "loc": loc, "msg": msg, "input": None}]},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(IdempotencyKeyReusedError)
    async def _key_reused(_: Request, exc: IdempotencyKeyReusedError) -> JSONResponse:
        # IETF idempotency-key draft: a reused key with another payload is 422.
        return validation_error(["header", "Idempotency-Key"], str(exc))

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(SpecLimitError)
    async def _limit(_: Request, exc: SpecLimitError) -> JSONResponse:
        return validation_error(["body", *exc.field], str(exc))

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        log.error("database error: %s", exc)
        return JSONResponse(status_code=503, content={"detail": "database unavailable"})
