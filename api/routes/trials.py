from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from api.deps import ReadSessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import TrialEpochPublic, TrialHistory
from service import repository as repo

router = APIRouter(prefix="/trials", tags=["trials"])


@router.get(
    "/{trial_id}/model",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "The compacted model file (TorchScript).",
        },
        404: ERROR_RESPONSES[404],
    },
)
def download_model(
    trial_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: ReadSessionDep
) -> Response:
    """The compacted model of a completed trial, as one self-contained file."""
    found = repo.get_trial_model_file(session, trial_id)
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
    trial_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: ReadSessionDep
) -> TrialHistory:
    """The trial's per-epoch history (loss, test accuracy, expected L0 and FLOPs), so far."""
    rows = repo.list_trial_epochs(session, trial_id)
    items = [TrialEpochPublic.model_validate(row) for row in rows]
    return TrialHistory(trial_id=trial_id, items=items, total=len(items))
