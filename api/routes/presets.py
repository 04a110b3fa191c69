"""``GET /presets``, ``GET /presets/{name}``: the paper's experiments as ready sweep specs
(``service.presets``), each with the paper's reported error and architecture."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.errors import ERROR_RESPONSES
from api.schemas import PresetList, PresetPublic
from service.presets import PRESETS, get_preset

router = APIRouter(prefix="/presets", tags=["presets"])


@router.get("", response_model=PresetList)
def list_presets() -> PresetList:
    """Every preset, in the paper's order (MNIST MLP and LeNet-5, then the wide ResNets)."""
    items = [PresetPublic.model_validate(p.as_dict()) for p in PRESETS]
    return PresetList(items=items, total=len(items))


@router.get("/{name}", response_model=PresetPublic, responses={404: ERROR_RESPONSES[404]})
def read_preset(name: Annotated[str, Path(max_length=100)]) -> PresetPublic:
    """One preset; its ``spec`` can be POSTed to ``/sweeps`` as is."""
    return PresetPublic.model_validate(get_preset(name).as_dict())
