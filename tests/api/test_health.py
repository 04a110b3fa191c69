from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from service.settings import Settings


def test_healthz(client: TestClient) -> None:
    r = client.get("/api/v1/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_an_unreachable_database(tmp_path: Path) -> None:
    # A directory is not a database file: every connection fails.
    settings = Settings(database_url=f"sqlite:///{tmp_path}", api_tokens=["t"], data_dir=tmp_path)
    client = TestClient(create_app(settings))  # no lifespan: start-up would wait for the DB
    r = client.get("/api/v1/healthz")
    assert r.status_code == 503
    assert r.json() == {"detail": "database unavailable"}


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert paths == {
        "/api/v1/sweeps",
        "/api/v1/sweeps/{sweep_id}",
        "/api/v1/sweeps/{sweep_id}/cancel",
        "/api/v1/sweeps/{sweep_id}/trials",
        "/api/v1/sweeps/{sweep_id}/pareto",
        "/api/v1/trials/{trial_id}/model",
        "/api/v1/trials/{trial_id}/history",
        "/api/v1/healthz",
    }
