"""Trial results: the per-epoch history, the final measures, and the model files."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.errors import InvalidMetricsError
from service.models import Sweep, Trial, TrialEpoch, utcnow
from service.repository._common import insert_for as _insert_for
from service.repository.model_files import ModelFiles, store_trial_model_files
from service.repository.trials import get_trial
from service.vocabulary import TrialStatus

__all__ = [
    "REQUIRED_METRICS",
    "list_trial_epochs",
    "record_trial_epoch",
    "record_trial_result",
]

#: Measures a trial result must carry (DESIGN.md §4); the others are stored when given.
REQUIRED_METRICS = ("accuracy", "sparsity", "params", "params_dense", "flops", "flops_dense")


def _as_mapping(row: Any) -> dict[str, Any]:
    if isinstance(row, Mapping):
        return dict(row)
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if hasattr(row, "as_dict"):
        return dict(row.as_dict())
    raise TypeError(f"expected a mapping or a dataclass, got {type(row).__name__}")


def _json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _stopped_epoch(value: Any) -> int | None:
    """The measures' ``stopped_epoch``: None, or a positive whole number (5.0 reads as 5)."""
    if value is None:
        return None
    # Non-finite numbers arrive here as None already (_json_safe).
    whole = isinstance(value, int | float) and not isinstance(value, bool) and value == int(value)
    if not whole or not 1 <= value <= 2**31 - 1:  # an INTEGER column
        raise InvalidMetricsError(f"stopped_epoch must be a positive integer, got {value!r}")
    return int(value)


_EPOCH_COLUMNS = ("loss", "accuracy", "expected_l0", "expected_flops", "seconds")


def record_trial_epoch(session: Session, trial_id: int, row: Mapping[str, Any] | Any) -> None:
    """Store one epoch of a trial's history; recording the same epoch again overwrites it.

    Args:
        row: A mapping or dataclass (e.g. ``l0models.EpochRecord``) with ``epoch``
            (1-based) and any of loss, accuracy, expected_l0, expected_flops, seconds;
            other keys are kept in ``extra``.
    """
    data = _json_safe(_as_mapping(row))
    if "epoch" not in data:
        raise InvalidMetricsError("an epoch row needs 'epoch'")
    epoch = int(data.pop("epoch"))
    get_trial(session, trial_id)
    values = {c: _float_or_none(data.pop(c, None)) for c in _EPOCH_COLUMNS}
    values["extra"] = data or None
    stmt = _insert_for(session)(TrialEpoch).values(
        trial_id=trial_id, epoch=epoch, recorded_at=utcnow(), **values
    )
    session.execute(stmt.on_conflict_do_update(index_elements=["trial_id", "epoch"], set_=values))
    session.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.epochs_done < epoch)
        .values(epochs_done=epoch)
    )


def list_trial_epochs(session: Session, trial_id: int) -> list[TrialEpoch]:
    """The epoch history of a trial, in epoch order."""
    get_trial(session, trial_id)
    return list(
        session.scalars(
            select(TrialEpoch).where(TrialEpoch.trial_id == trial_id).order_by(TrialEpoch.epoch)
        ).all()
    )


def record_trial_result(
    session: Session,
    trial_id: int,
    metrics: Mapping[str, Any] | Any,
    model_bytes: bytes | ModelFiles | None = None,
    *,
    filename: str | None = None,
) -> Trial:
    """Store a trial's final measures (DESIGN.md §4) and its compacted model; idempotent.

    The trial becomes ``completed``, or ``stopped`` when the measures carry a non-null
    ``stopped_epoch`` (an early-stopped trial, measured at that epoch; issue 13), even if
    it was cancelled meanwhile: results are never thrown away. Calling it again replaces
    the result, so there is always one.

    Args:
        metrics: Mapping or dataclass with at least :data:`REQUIRED_METRICS`; ``error`` is
            derived from ``accuracy`` when absent. ``stopped_epoch`` (a positive integer or
            None) is also kept in the trial's ``stopped_epoch`` column.
        model_bytes: The TorchScript file, or every format's file (or why it has none:
            :class:`~service.repository.model_files.ModelUnavailable`) by format; they
            replace the files stored before. None keeps the stored files.
        filename: TorchScript download name; default ``trial-<id>.pt``.
    """
    data = _json_safe(_as_mapping(metrics))
    missing = [k for k in REQUIRED_METRICS if data.get(k) is None]
    if missing:
        raise InvalidMetricsError(f"trial result lacks {', '.join(missing)}")
    if data.get("error") is None:
        data["error"] = 1.0 - float(data["accuracy"])
    stopped_epoch = _stopped_epoch(data.get("stopped_epoch"))
    trial = get_trial(session, trial_id)
    trial.metrics = data
    for column in REQUIRED_METRICS:
        setattr(trial, column, _float_or_none(data[column]))
    epochs = data.get("epochs")
    if isinstance(epochs, int) and epochs > trial.epochs_done:
        trial.epochs_done = epochs
    if stopped_epoch is not None and stopped_epoch > trial.epochs_done:
        trial.epochs_done = stopped_epoch
    trial.stopped_epoch = stopped_epoch
    trial.status = TrialStatus.COMPLETED if stopped_epoch is None else TrialStatus.STOPPED
    trial.error = None
    trial.finished_at = utcnow()
    session.execute(
        update(Sweep)
        .where(Sweep.id == trial.sweep_id)
        .values(results_version=Sweep.results_version + 1)
        # No identity-map scan per result (O(n) with many loaded trials); expire instead.
        .execution_options(synchronize_session=False)
    )
    sweep = session.identity_map.get(session.identity_key(Sweep, trial.sweep_id))
    if sweep is not None:
        session.expire(sweep, ["results_version"])
    session.flush()
    if model_bytes is not None:
        files = {"torchscript": model_bytes} if isinstance(model_bytes, bytes) else model_bytes
        store_trial_model_files(session, trial_id, files, filename=filename)
    return trial
