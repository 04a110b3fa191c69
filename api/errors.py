"""Service errors -> HTTP responses, in FastAPI's ``{"detail": ...}`` shape."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.schemas import ErrorPublic
from service.errors import (
    ConflictError,
    IdempotencyKeyReusedError,
    InvalidDataError,
    NotFoundError,
    SpecLimitError,
    StorageError,
)

__all__ = [
    "ERROR_RESPONSES",
    "RETRY_AFTER_S",
    "database_unavailable",
    "install_error_handlers",
    "json_safe",
    "validation_error",
]

#: What a 503 asks the client to wait: a busy pool frees up in well under that, and a
#: restarting database is polled at that pace.
RETRY_AFTER_S = 2

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


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot carry made printable: NaN and ±infinity as the strings
    ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; strings that are not valid Unicode (lone
    surrogates) with those code points escaped as ``\\udXXX``; other objects by ``repr``."""
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {str(json_safe(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return json_safe(repr(value))


def database_unavailable(exc: StorageError, *, health: bool = False) -> JSONResponse:
    """503 ``{"detail": "database unavailable"}`` with ``Retry-After``; for ``/healthz`` it
    also says which part is down (``database``: ``busy`` when no pooled connection came free
    in time, else ``unreachable``)."""
    busy = isinstance(exc.__cause__, PoolTimeoutError)
    log.error("database %s: %s", "busy" if busy else "unavailable", exc)
    content: dict[str, str] = {"detail": "database unavailable"}
    if health:
        content |= {
            "status": "unavailable",
            "api": "ok",
            "database": "busy" if busy else "unreachable",
        }
    return JSONResponse(
        status_code=503, content=content, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input; NaN, infinities (also 1e309) and lone
        # surrogates in it made the 422 unencodable, i.e. a 500 (issue 10).
        return JSONResponse(
            status_code=422, content={"detail": json_safe(jsonable_encoder(exc.errors()))}
        )

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

    @app.exception_handler(InvalidDataError)
    async def _refused(_: Request, exc: InvalidDataError) -> JSONResponse:
        # A value the database refuses is the request's fault: 422, not an outage to retry.
        log.warning("database refused a value: %s", exc)
        return validation_error(["body"], "the database refused a value of this request")

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        return database_unavailable(exc)
