"""l0sweep service layer: vocabulary, settings, sweep spec, storage, repository, Pareto front.

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
from service.vocabulary import (
    DEFAULT_OBJECTIVES,
    OBJECTIVE_DIRECTIONS,
    Architecture,
    Dataset,
    Direction,
    ModelFormat,
    Objective,
    SweepStatus,
    TrialStatus,
)

__all__ = [
    "DEFAULT_OBJECTIVES",
    "OBJECTIVE_DIRECTIONS",
    "Architecture",
    "Base",
    "ConflictError",
    "Dataset",
    "Direction",
    "IdempotencyKeyReusedError",
    "InvalidMetricsError",
    "L0SweepError",
    "ModelFormat",
    "NotFoundError",
    "Objective",
    "Settings",
    "SpecLimitError",
    "StorageError",
    "Sweep",
    "SweepSpec",
    "SweepStatus",
    "Trial",
    "TrialEpoch",
    "TrialModel",
    "TrialPoint",
    "TrialStatus",
    "create_engine_for",
    "downgrade_database",
    "ensure_api_tokens",
    "get_settings",
    "session_scope",
    "upgrade_database",
]
