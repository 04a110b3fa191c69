"""The web dashboard: HTML pages at ``/``, ``/sweeps/{id}``, ``/trials/{id}`` and ``/submit``,
and their static assets under ``/static`` (plain ES modules and CSS shipped in this package,
nothing from a CDN). The pages read the REST API (``/api/v1``) from the browser."""

from __future__ import annotations

from api.dashboard.pages import STATIC_DIR, install_dashboard

__all__ = ["STATIC_DIR", "install_dashboard"]
