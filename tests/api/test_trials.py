from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import AUTH
from tests.api.helpers import complete_trials, spec


def test_model_download(client: TestClient, app: FastAPI) -> None:
    sweep_id = client.post("/api/v1/sweeps", json=spec(), headers=AUTH).json()["id"]
    payload = bytes(range(256)) * 100
    (tid, other, *_) = complete_trials(app, sweep_id, [(0.9, 0.5, 1.0)], model=payload)
    r = client.get(f"/api/v1/trials/{tid}/model")
    assert r.status_code == 200
    assert r.content == payload
    assert r.headers["content-type"] == "application/octet-stream"
    assert f'filename="trial-{tid}.pt"' in r.headers["content-disposition"]
    r = client.get(f"/api/v1/trials/{other}/model")  # pending trial: no model yet
    assert r.status_code == 404 and "no model" in r.json()["detail"]
    assert client.get("/api/v1/trials/999999/model").status_code == 404


def test_history_lists_the_recorded_epochs_in_order(client: TestClient, app: FastAPI) -> None:
    sweep_id = client.post("/api/v1/sweeps", json=spec(), headers=AUTH).json()["id"]
    (tid, other, *_) = complete_trials(app, sweep_id, [(0.9, 0.5, 1.0)])
    body = client.get(f"/api/v1/trials/{tid}/history").json()
    assert body["trial_id"] == tid and body["total"] == 1
    (row,) = body["items"]
    assert row["epoch"] == 1 and row["loss"] == 0.5 and row["accuracy"] == 0.9
    assert client.get(f"/api/v1/trials/{other}/history").json() == {
        "trial_id": other,
        "items": [],
        "total": 0,
    }
    r = client.get("/api/v1/trials/999999/history")
    assert r.status_code == 404 and "999999" in r.json()["detail"]
