"""Repository functions: the only place that builds queries.

Every function takes a :class:`~sqlalchemy.orm.Session` opened by
:func:`service.db.session_scope` and leaves committing to it. Callers use the short path
(``from service import repository``); the modules behind it are an implementation detail.
"""

from __future__ import annotations

from service.repository._common import Page, ping
from service.repository.best import best_trial, best_trials, budget_constraint
from service.repository.checkpoints import (
    forget_pack_checkpoint,
    list_pack_checkpoints,
    remember_pack_checkpoint,
)
from service.repository.fronts import OBJECTIVES, FrontCache, ParetoFront, pareto_front
from service.repository.model_files import (
    ModelFiles,
    ModelUnavailable,
    get_trial_model,
    get_trial_model_file,
    store_trial_model_files,
)
from service.repository.results import (
    REQUIRED_METRICS,
    list_trial_epochs,
    record_trial_epoch,
    record_trial_result,
)
from service.repository.runners import (
    database_now,
    forget_runner,
    record_heartbeat,
    release_sweep,
    sweep_owner,
    take_over_orphaned_sweep,
)
from service.repository.stats import (
    EPOCH_SECONDS_BUCKETS,
    EpochHistogram,
    ServiceStats,
    StatsCollector,
)
from service.repository.sweeps import (
    cancel_sweep,
    claim_next_pending_sweep,
    count_sweeps,
    create_sweep,
    finish_sweep,
    get_sweep,
    list_resumable_sweeps,
    list_sweeps,
    sweep_counts,
    sweep_counts_many,
    sweep_spec,
)
from service.repository.trials import (
    add_trial,
    get_trial,
    list_trials,
    mark_trial_failed,
    mark_trial_pending,
    mark_trial_running,
    set_trial_pack,
)

__all__ = [
    "EPOCH_SECONDS_BUCKETS",
    "OBJECTIVES",
    "REQUIRED_METRICS",
    "EpochHistogram",
    "FrontCache",
    "ModelFiles",
    "ModelUnavailable",
    "Page",
    "ParetoFront",
    "ServiceStats",
    "StatsCollector",
    "add_trial",
    "best_trial",
    "best_trials",
    "budget_constraint",
    "cancel_sweep",
    "claim_next_pending_sweep",
    "count_sweeps",
    "create_sweep",
    "database_now",
    "finish_sweep",
    "forget_pack_checkpoint",
    "forget_runner",
    "get_sweep",
    "get_trial",
    "get_trial_model",
    "get_trial_model_file",
    "list_pack_checkpoints",
    "list_resumable_sweeps",
    "list_sweeps",
    "list_trial_epochs",
    "list_trials",
    "mark_trial_failed",
    "mark_trial_pending",
    "mark_trial_running",
    "pareto_front",
    "ping",
    "record_heartbeat",
    "record_trial_epoch",
    "record_trial_result",
    "release_sweep",
    "remember_pack_checkpoint",
    "set_trial_pack",
    "store_trial_model_files",
    "sweep_counts",
    "sweep_counts_many",
    "sweep_owner",
    "sweep_spec",
    "take_over_orphaned_sweep",
]
