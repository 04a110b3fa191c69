"""API fixtures: ``settings`` / ``app`` / ``client`` on the parametrised ``db_url``.

Reuse elsewhere with ``from tests.api.conftest import ...`` or by copying the import line
below into another conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from service.settings import Settings
from tests.service.fixtures import db_url, engine, postgres_url  # noqa: F401

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:  # noqa: F811
    return Settings(
        database_url=db_url,
        api_tokens=[TOKEN, "second-token"],
        data_dir=tmp_path / "data",
        max_trials_per_sweep=50,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client whose app has run its start-up (migrations applied)."""
    with TestClient(app) as c:
        yield c
