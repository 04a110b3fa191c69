"""``GET /metrics``: Prometheus text that prometheus_client parses, gauges equal to what
``GET /sweeps`` says, HTTP metrics, and the token setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from api.main import create_app
from api.metrics import db_errors_seen
from service import repository as repo
from service.db import session_scope
from service.settings import Settings
from tests.api.conftest import AUTH, TOKEN
from tests.api.helpers import complete_trials, spec


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # Every scrape refreshes: the test compares figures right after each change.
    return Settings(
        database_url=db_url,
        api_tokens=[TOKEN],
        data_dir=tmp_path / "data",
        metrics_refresh_s=0,
    )


def scrape(client: TestClient, **kwargs: Any) -> dict[str, dict[tuple[str, ...], float]]:
    """``{sample name: {label values: value}}`` of one scrape, parsed by prometheus_client."""
    r = client.get("/metrics", **kwargs)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            key = tuple(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def test_gauges_match_get_sweeps(app: FastAPI, client: TestClient) -> None:
    ids = [client.post("/api/v1/sweeps", json=spec(), headers=AUTH).json()["id"] for _ in range(3)]
    complete_trials(app, ids[0], [(0.9, 0.5, 1e5), (0.8, 0.6, 5e4)], model=b"m")
    with session_scope(app.state.l0sweep.engine) as s:
        trial_ids = [t.id for t in repo.list_trials(s, ids[1]).items]
        repo.mark_trial_running(s, trial_ids[0], node="n1")
        repo.mark_trial_failed(s, trial_ids[1], "boom")
    assert client.post(f"/api/v1/sweeps/{ids[2]}/cancel", headers=AUTH).status_code == 200

    metrics = scrape(client)
    sweeps = client.get("/api/v1/sweeps").json()["items"]
    by_status: dict[str, int] = {}
    trial_counts: dict[str, int] = {}
    for sweep in sweeps:
        by_status[sweep["status"]] = by_status.get(sweep["status"], 0) + 1
        for status, n in sweep["counts"].items():
            trial_counts[status] = trial_counts.get(status, 0) + n
    for status, n in by_status.items():
        assert metrics["l0sweep_sweeps"][(f"status={status}",)] == n
    for status, n in trial_counts.items():
        assert metrics["l0sweep_trials"][(f"status={status}",)] == n, status
    assert sum(metrics["l0sweep_trials"].values()) == 18
    assert metrics["l0sweep_trial_epochs_total"][()] == 2  # complete_trials records epoch 1


def test_epochs_feed_the_counter_and_the_histogram(app: FastAPI, client: TestClient) -> None:
    sweep_id = client.post("/api/v1/sweeps", json=spec(), headers=AUTH).json()["id"]
    with session_scope(app.state.l0sweep.engine) as s:
        trial_id = repo.list_trials(s, sweep_id).items[0].id
        for epoch, seconds in enumerate([0.2, 3.0, 45.0], start=1):
            repo.record_trial_epoch(s, trial_id, {"epoch": epoch, "seconds": seconds})
    metrics = scrape(client)
    assert metrics["l0sweep_trial_epochs_total"][()] == 3
    buckets = metrics["l0sweep_trial_epoch_seconds_bucket"]
    assert buckets[("le=0.25",)] == 1 and buckets[("le=5.0",)] == 2
    assert buckets[("le=60.0",)] == 3 and buckets[("le=+Inf",)] == 3
    assert metrics["l0sweep_trial_epoch_seconds_count"][()] == 3
    assert metrics["l0sweep_trial_epoch_seconds_sum"][()] == pytest.approx(48.2)


def test_http_metrics_and_runner_heartbeats(app: FastAPI, client: TestClient) -> None:
    for _ in range(3):
        assert client.get("/api/v1/sweeps").status_code == 200
    assert client.get("/api/v1/sweeps/424242").status_code == 404
    with session_scope(app.state.l0sweep.engine) as s:
        repo.record_heartbeat(s, "runner@gpu-1", host="gpu-1", pid=7)
    metrics = scrape(client)
    requests = metrics["http_requests_total"]
    assert requests[("handler=/api/v1/sweeps", "method=GET", "status=2xx")] == 3
    assert requests[("handler=/api/v1/sweeps/{sweep_id}", "method=GET", "status=4xx")] == 1
    assert not any("handler=/metrics" in k for k in requests)  # scrapes are not counted
    assert "process_resident_memory_bytes" in metrics
    [age] = metrics["l0sweep_runner_heartbeat_age_seconds"].items()
    assert age[0] == ("runner=runner@gpu-1",) and 0 <= age[1] < 60


def test_database_errors_are_counted(app: FastAPI, client: TestClient) -> None:
    before = scrape(client)["l0sweep_db_errors_total"][()]
    with app.state.l0sweep.engine.connect() as conn, pytest.raises(Exception, match="no_such"):
        conn.execute(text("SELECT * FROM no_such_table"))
    assert scrape(client)["l0sweep_db_errors_total"][()] == before + 1


@pytest.mark.parametrize(
    ("environment", "setting", "needs_token"),
    [("dev", None, False), ("prod", None, True), ("prod", False, False), ("dev", True, True)],
)
def test_whether_a_scrape_needs_the_token_is_a_setting(
    db_url: str, tmp_path: Path, environment: str, setting: bool | None, needs_token: bool
) -> None:
    settings = Settings(
        environment=environment,  # type: ignore[arg-type]
        database_url=db_url,
        api_tokens=[TOKEN],
        data_dir=tmp_path / "data",
        metrics_require_token=setting,
    )
    with TestClient(create_app(settings)) as client:
        anonymous = client.get("/metrics")
        assert anonymous.status_code == (401 if needs_token else 200)
        assert client.get("/metrics", headers=AUTH).status_code == 200
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == (401 if needs_token else 200)


def test_a_scrape_answers_while_the_database_is_down(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1",
        api_tokens=[TOKEN],
        data_dir=tmp_path / "data",
        migrate_on_startup=False,
    )
    client = TestClient(create_app(settings))  # no lifespan: it would wait for the database
    before = db_errors_seen()
    metrics = scrape(client)
    assert "l0sweep_trials" not in metrics  # no figures yet, but HTTP and process ones
    assert metrics["l0sweep_db_errors_total"][()] == db_errors_seen() > before
    assert "process_cpu_seconds_total" in metrics
