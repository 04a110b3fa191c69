"""The compacted model files of completed trials: one row per (trial, format).

The runner stores every format when a trial completes (``record_trial_result``); a format
the trainable could not export is stored as its reason, which the API returns with a 409.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.errors import ModelFormatUnavailableError
from service.models import TrialModel, utcnow
from service.repository._common import insert_for
from service.repository.trials import get_trial
from service.vocabulary import ModelFormat

__all__ = [
    "ModelFiles",
    "ModelUnavailable",
    "get_trial_model",
    "get_trial_model_file",
    "store_trial_model_files",
]


@dataclass(frozen=True)
class ModelUnavailable:
    """Why a trial has no model file in some format (e.g. the exporter's error)."""

    reason: str


#: Format -> the file's bytes, or why there is none.
ModelFiles = Mapping[ModelFormat | str, bytes | ModelUnavailable]


def store_trial_model_files(
    session: Session, trial_id: int, files: ModelFiles, *, filename: str | None = None
) -> None:
    """Store a trial's model files, replacing every file it had before.

    Args:
        files: Every format the trial has now; formats left out are deleted.
        filename: The TorchScript download name (default ``trial-<id>.pt``); the other
            formats take its stem and their own suffix.
    """
    stem = (filename or f"trial-{trial_id}.pt").rsplit(".", 1)[0]
    given = {ModelFormat(fmt): content for fmt, content in files.items()}
    session.execute(
        delete(TrialModel).where(
            TrialModel.trial_id == trial_id, TrialModel.format.not_in(list(given))
        )
    )
    for fmt, content in given.items():
        values: dict[str, Any]
        if isinstance(content, ModelUnavailable):
            values = {"data": None, "size": None, "sha256": None, "error": content.reason[:4000]}
        else:
            data = bytes(content)
            values = {
                "data": data,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "error": None,
            }
        name = filename if fmt is ModelFormat.TORCHSCRIPT and filename else stem + fmt.suffix
        values |= {"filename": name, "created_at": utcnow()}
        stmt = insert_for(session)(TrialModel).values(trial_id=trial_id, format=fmt, **values)
        session.execute(
            stmt.on_conflict_do_update(index_elements=["trial_id", "format"], set_=values)
        )


def get_trial_model_file(
    session: Session, trial_id: int, fmt: ModelFormat | str = ModelFormat.TORCHSCRIPT
) -> tuple[str, bytes] | None:
    """``(filename, bytes)`` of a trial's model in ``fmt``; None when the trial has no model.

    Raises:
        NotFoundError: No such trial.
        ModelFormatUnavailableError: The trial has a model, but not in ``fmt``; the message
            says why (the export failed, or the trial completed before ``fmt`` existed).
    """
    fmt = ModelFormat(fmt)
    get_trial(session, trial_id)
    # Which formats exist and why not, without reading any file's bytes.
    rows = session.execute(
        select(TrialModel.format, TrialModel.error).where(TrialModel.trial_id == trial_id)
    ).all()
    if not rows:
        return None
    errors = {ModelFormat(r.format): r.error for r in rows}
    if fmt not in errors:
        have = ", ".join(sorted(f for f, error in errors.items() if error is None))
        raise ModelFormatUnavailableError(
            f"trial {trial_id} has no {fmt} model: it completed before {fmt} files were "
            f"exported (it has: {have or 'none'})"
        )
    if errors[fmt] is not None:
        raise ModelFormatUnavailableError(f"trial {trial_id} has no {fmt} model: {errors[fmt]}")
    row = session.execute(
        select(TrialModel.filename, TrialModel.data).where(
            TrialModel.trial_id == trial_id, TrialModel.format == fmt
        )
    ).one_or_none()
    if row is None or row.data is None:  # replaced between the two reads
        return None
    return str(row.filename), bytes(row.data)


def get_trial_model(
    session: Session, trial_id: int, fmt: ModelFormat | str = ModelFormat.TORCHSCRIPT
) -> bytes | None:
    """The stored model file of a trial, or None; see :func:`get_trial_model_file`."""
    found = get_trial_model_file(session, trial_id, fmt)
    return None if found is None else found[1]
