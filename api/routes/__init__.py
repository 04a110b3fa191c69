"""Routers of ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import health, presets, sweeps, trials, views

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(sweeps.router)
api_router.include_router(trials.router)
api_router.include_router(health.router)
api_router.include_router(views.router)
api_router.include_router(presets.router)

__all__ = ["api_router"]
