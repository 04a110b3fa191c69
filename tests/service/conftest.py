from __future__ import annotations

from tests.service.fixtures import db_url, engine, postgres_url  # noqa: F401
