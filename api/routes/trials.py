from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from api.deps import DatabaseDep
from api.errors import ERROR_RESPONSES
from api.schemas import TrialEpochPublic, TrialHistory
from service import repository as repo
from service.vocabulary import ModelFormat

router = APIRouter(prefix="/trials", tags=["trials"])


@router.get(
    "/{trial_id}/model",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "The compacted model file in the asked format.",
        },
        404: ERROR_RESPONSES[404],
        409: {**ERROR_RESPONSES[409], "description": "The trial has no file in this format"},
    },
)
def download_model(
    trial_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    db: DatabaseDep,
    model_format: Annotated[
        ModelFormat, Query(alias="format", description="torchscript, onnx or pt2")
    ] = ModelFormat.TORCHSCRIPT,
) -> Response:
    """The compacted model of a completed trial, as one self-contained file.

    ``format``: ``torchscript`` (``torch.jit.load``, the default), ``onnx`` (onnxruntime) or
    ``pt2`` (``torch.export.load``). Each takes raw [0, 1] pixels (N, C, H, W), any N, and
    returns logits. A format the trial has no file in is a 409 that says why.
    """
    with db.read() as session:
        found = repo.get_trial_model_file(session, trial_id, model_format)
    if found is None:
        raise HTTPException(status_code=404, detail=f"trial {trial_id} has no model")
    filename, data = found
    return Response(
        content=data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/{trial_id}/history", responses={404: ERROR_RESPONSES[404]})
def trial_history(
    trial_id: Annotated[int, Path(ge=1, le=2**63 - 1)], db: DatabaseDep
) -> TrialHistory:
    """The trial's per-epoch history (loss, test accuracy, expected L0 and FLOPs), so far."""
    with db.read() as session:
        rows = repo.list_trial_epochs(session, trial_id)
        items = [TrialEpochPublic.model_validate(row) for row in rows]
    return TrialHistory(trial_id=trial_id, items=items, total=len(items))
