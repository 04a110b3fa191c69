"""Domain errors raised by the service layer (the API maps them to HTTP statuses)."""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "IdempotencyKeyReusedError",
    "InvalidMetricsError",
    "L0SweepError",
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
