from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from service.settings import Settings


def test_healthz(client: TestClient) -> None:
    r = client.get("/api/v1/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "api": "ok", "database": "ok"}
    head = client.head("/api/v1/healthz")
    assert (head.status_code, head.content) == (200, b"")


def test_healthz_reports_an_unreachable_database(tmp_path: Path) -> None:
    # A directory is not a database file: every connection fails.
    settings = Settings(database_url=f"sqlite:///{tmp_path}", api_tokens=["t"], data_dir=tmp_path)
    client = TestClient(create_app(settings))  # no lifespan: start-up would wait for the DB
    r = client.get("/api/v1/healthz")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "2"
    assert r.json() == {
        "detail": "database unavailable",
        "status": "unavailable",
        "api": "ok",
        "database": "unreachable",
    }
    assert client.head("/api/v1/healthz").status_code == 503
    # Every other route: the same 503, never a 500.
    for path in ("/sweeps", "/sweeps/1", "/sweeps/1/trials", "/sweeps/1/pareto"):
        r = client.get(f"/api/v1{path}")
        assert (r.status_code, r.json()) == (503, {"detail": "database unavailable"}), path
        assert r.headers["Retry-After"] == "2"


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
        "/metrics",  # Prometheus, outside /api/v1 (issue 15)
        # the dashboard's views (issue 14)
        "/api/v1/trials/{trial_id}",
        "/api/v1/progress",
        "/api/v1/sweeps/{sweep_id}/pareto/history",
        # the paper's experiments as ready specs (issue 11)
        "/api/v1/presets",
        "/api/v1/presets/{name}",
    }
