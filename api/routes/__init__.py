"""Routers of ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import health, sweeps, trials

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(sweeps.router)
api_router.include_router(trials.router)
api_router.include_router(health.router)

__all__ = ["api_router"]
