"""HTML routes of the dashboard (outside ``/api/v1`` and the OpenAPI schema).

Each page is the same small shell (``page.html``) naming the ES module that draws it; the
module fetches everything else from the REST API (an unknown id shows as such there), so
the pages need no database, read pages need no token, and writes ask for one in the
browser.
"""

from __future__ import annotations

import functools
from pathlib import Path
from string import Template
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "install_dashboard", "router"]

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

# Scripts and styles only from this origin (no inline code), no framing: a page that shows
# sweep names and measures from the database has nothing else to load.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)

Id = Annotated[int, PathParam(ge=1, le=2**63 - 1)]


@functools.cache
def _shell() -> Template:
    return Template((HERE / "page.html").read_text(encoding="utf-8"))


def render_page(page: str, title: str, *, data: dict[str, Any] | None = None) -> HTMLResponse:
    """The shell for ``page`` (the module ``/static/js/page-<page>.js`` draws it)."""
    attributes = " ".join(f'data-{k}="{int(v)}"' for k, v in (data or {}).items())
    html = _shell().substitute(page=page, title=title, data=attributes)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/", response_class=HTMLResponse)
def sweeps_page() -> HTMLResponse:
    """Every sweep with its status, progress and counts; updates live."""
    return render_page("sweeps", "Sweeps")


@router.get("/submit", response_class=HTMLResponse)
def submit_page(request: Request) -> HTMLResponse:
    """The spec editor. Presets are offered when the API serves them."""
    # Asked of the schema (built once per app): routers are not flattened into app.routes.
    has_presets = "/api/v1/presets" in request.app.openapi().get("paths", {})
    return render_page("submit", "New sweep", data={"presets": has_presets})


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(sweep_id: Id) -> HTMLResponse:
    """One sweep: the front, the hypervolume over time, the trials; grows live."""
    return render_page("sweep", f"Sweep {sweep_id}", data={"sweep-id": sweep_id})


@router.get("/trials/{trial_id}", response_class=HTMLResponse)
def trial_page(trial_id: Id) -> HTMLResponse:
    """One trial: per-epoch curves, kept architecture, measures, model downloads."""
    return render_page("trial", f"Trial {trial_id}", data={"trial-id": trial_id})


class DashboardAssets(StaticFiles):
    """The dashboard's files, revalidated on every load (``no-cache`` + ETag): an upgraded
    package is never served from a stale browser cache."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard's pages and assets from ``app``."""
    app.include_router(router)
    app.mount("/static", DashboardAssets(directory=STATIC_DIR), name="dashboard-static")
