"""Domain errors raised by the service layer (the API maps them to HTTP statuses)."""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "IdempotencyKeyReusedError",
    "InvalidDataError",
    "InvalidMetricsError",
    "L0SweepError",
    "ModelFormatUnavailableError",
    "NotFoundError",
    "SpecLimitError",
    "StorageError",
]


class L0SweepError(Exception):
    """Base class of every error the service layer raises on purpose."""


class NotFoundError(L0SweepError, LookupError):
    """A sweep or trial id that does not exist."""


class ConflictError(L0SweepError):
    """The request does not fit the current state (e.g. cancelling a finished sweep)."""


class IdempotencyKeyReusedError(ConflictError):
    """An Idempotency-Key that was already used with a different sweep spec."""


class ModelFormatUnavailableError(ConflictError):
    """A completed trial that has no model file in the asked format; says why."""


class SpecLimitError(L0SweepError, ValueError):
    """A valid spec that exceeds a configured limit (e.g. ``max_trials_per_sweep``).

    Attributes:
        field: The spec field to blame, as a tuple path (e.g. ``("lambdas",)``).
    """

    def __init__(self, message: str, field: tuple[str, ...]) -> None:
        super().__init__(message)
        self.field = field


class InvalidMetricsError(L0SweepError, ValueError):
    """A trial result that lacks the measures of DESIGN.md §4."""


class StorageError(L0SweepError):
    """A database failure, re-raised by :func:`service.db.session_scope` after rollback."""


class InvalidDataError(StorageError):
    """The database refused a value it was given (a ``DataError`` or ``IntegrityError``: a
    NUL byte in a text, a number out of range, a broken constraint).

    The input is at fault, not the database: retrying the same request cannot succeed, so
    the API answers 422 (not the 503 of an outage) and runners do not retry it.
    """
