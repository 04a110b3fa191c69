"""l0sweep service layer: settings, sweep spec, storage, repository, Pareto front.

No torch, no Ray, no FastAPI here (DESIGN.md §2).
"""

from __future__ import annotations

from service.db import (
    create_engine_for,
    downgrade_database,
    session_scope,
    upgrade_database,
)
from service.errors import (
    ConflictError,
    IdempotencyKeyReusedError,
    InvalidMetricsError,
    L0SweepError,
    NotFoundError,
    SpecLimitError,
    StorageError,
)
from service.models import Base, Sweep, Trial, TrialEpoch, TrialModel
from service.settings import Settings, ensure_api_tokens, get_settings
from service.spec import SweepSpec, TrialPoint

__all__ = [
    "Base",
    "ConflictError",
    "IdempotencyKeyReusedError",
    "InvalidMetricsError",
    "L0SweepError",
    "NotFoundError",
    "Settings",
    "SpecLimitError",
    "StorageError",
    "Sweep",
    "SweepSpec",
    "Trial",
    "TrialEpoch",
    "TrialModel",
    "TrialPoint",
    "create_engine_for",
    "downgrade_database",
    "ensure_api_tokens",
    "get_settings",
    "session_scope",
    "upgrade_database",
]
