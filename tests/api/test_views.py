"""The read-only views the dashboard watches: one trial, sweeps' progress, hypervolume history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from service import repository as repo
from service.db import session_scope
from service.models import Trial
from tests.api.conftest import AUTH
from tests.api.helpers import complete_trials, spec

URL = "/api/v1/sweeps"


def _finish_in_order(app: FastAPI, trial_ids: list[int]) -> None:
    """Give the trials distinct finish times, one second apart, in the listed order."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with session_scope(app.state.l0sweep.engine) as s:
        for i, tid in enumerate(trial_ids):
            s.execute(update(Trial).where(Trial.id == tid).values(finished_at=start + timedelta(i)))


def test_get_trial(client: TestClient, app: FastAPI) -> None:
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    done, pending, *_ = complete_trials(app, sweep_id, [(0.9, 0.5, 1e5)])
    listed = {t["id"]: t for t in client.get(f"{URL}/{sweep_id}/trials").json()["items"]}
    for tid in (done, pending):
        r = client.get(f"/api/v1/trials/{tid}")
        assert r.status_code == 200 and r.json() == listed[tid]
    assert client.get(f"/api/v1/trials/{done}").json()["metrics"]["accuracy"] == 0.9
    r = client.get("/api/v1/trials/999999")
    assert r.status_code == 404 and "999999" in r.json()["detail"]


def test_progress_sums_epochs_of_the_listed_sweeps(client: TestClient, app: FastAPI) -> None:
    first = client.post(URL, json=spec(), headers=AUTH).json()["id"]  # 6 trials x 2 epochs
    second = client.post(URL, json=spec(seeds=[0]), headers=AUTH).json()["id"]  # 3 x 2
    complete_trials(app, first, [(0.9, 0.5, 1e5), (0.8, 0.6, 1e4)])  # epoch 1 recorded
    with session_scope(app.state.l0sweep.engine) as s:
        tid = repo.list_trials(s, second).items[0].id
        repo.record_trial_epoch(s, tid, {"epoch": 1, "loss": 1.0})
        repo.record_trial_epoch(s, tid, {"epoch": 2, "loss": 0.5})
    r = client.get("/api/v1/progress", params={"sweep_ids": f"{second},{first},999"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "items": [
            {"sweep_id": second, "epochs_done": 2, "epochs_total": 6},
            {"sweep_id": first, "epochs_done": 2, "epochs_total": 12},
        ],
        "total": 2,
    }
    assert client.get("/api/v1/progress", params={"sweep_ids": ""}).json()["total"] == 0


@pytest.mark.parametrize("bad", ["a,b", "0", "-3", ",".join(["1"] * 201)])
def test_progress_refuses_bad_ids(client: TestClient, bad: str) -> None:
    r = client.get("/api/v1/progress", params={"sweep_ids": bad})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "sweep_ids"]


def test_hypervolume_history_grows_to_the_fronts_hypervolume(
    client: TestClient, app: FastAPI
) -> None:
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    rows = [(0.80, 0.2, 4e5), (0.90, 0.5, 2e5), (0.85, 0.1, 5e5), (0.95, 0.7, 1e5)]
    ids = complete_trials(app, sweep_id, rows)
    # Finishing order: 3rd, 1st, 4th, 2nd trial (not the grid order).
    order = [ids[2], ids[0], ids[3], ids[1]]
    _finish_in_order(app, order)

    body = client.get(f"{URL}/{sweep_id}/pareto/history").json()
    assert body["objectives"] == ["accuracy", "sparsity", "flops"]
    assert [p["completed"] for p in body["items"]] == [1, 2, 3, 4] and body["total"] == 4
    assert body["items"][0]["finished_at"].startswith("2025-01-01")
    volumes = [p["hypervolume"] for p in body["items"]]
    assert volumes == sorted(volumes) and volumes[0] > 0
    # Each point is the hypervolume of that prefix's front. On accuracy x sparsity the
    # minimised fractions (error, 1 - sparsity) arrive as (.15, .9), (.2, .8), (.05, .3)
    # (dominating both), (.1, .5) (dominated).
    two = client.get(
        f"{URL}/{sweep_id}/pareto/history", params={"objectives": "accuracy,sparsity"}
    ).json()
    assert [p["hypervolume"] for p in two["items"]] == pytest.approx(
        [0.85 * 0.1, 0.85 * 0.1 + 0.8 * 0.1, 0.95 * 0.7, 0.95 * 0.7]
    )
    for objectives in ("accuracy,sparsity,flops", "accuracy,sparsity", "flops,params"):
        history = client.get(
            f"{URL}/{sweep_id}/pareto/history", params={"objectives": objectives}
        ).json()["items"]
        front = client.get(f"{URL}/{sweep_id}/pareto", params={"objectives": objectives}).json()
        assert history[-1]["hypervolume"] == pytest.approx(front["hypervolume"], abs=1e-12)

    # Constraints filter the points as /pareto does; completed counts all trials.
    params = {"objectives": "accuracy,sparsity", "min_accuracy": 0.9}
    history = client.get(f"{URL}/{sweep_id}/pareto/history", params=params).json()["items"]
    front = client.get(f"{URL}/{sweep_id}/pareto", params=params).json()
    assert [p["completed"] for p in history] == [1, 2, 3, 4]
    # The first two (accuracy .85 and .80) are filtered out.
    assert [p["hypervolume"] for p in history] == pytest.approx([0, 0, 0.95 * 0.7, 0.95 * 0.7])
    assert history[-1]["hypervolume"] == pytest.approx(front["hypervolume"], abs=1e-12)


def test_hypervolume_history_is_thinned_and_validated(client: TestClient, app: FastAPI) -> None:
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    complete_trials(app, sweep_id, [(0.5 + 0.05 * i, 0.1 * i, 1e5) for i in range(6)])
    history = f"{URL}/{sweep_id}/pareto/history"
    body = client.get(history, params={"max_points": 3}).json()
    assert [p["completed"] for p in body["items"]] == [1, 4, 6]  # evenly spaced, last kept
    empty = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    assert client.get(f"{URL}/{empty}/pareto/history").json()["items"] == []
    assert client.get(f"{URL}/999999/pareto/history").status_code == 404
    for params in ({"objectives": "accuracy"}, {"objectives": "accuracy,speed"}):
        r = client.get(history, params=params)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "objectives"]
    assert client.get(history, params={"max_points": 0}).status_code == 422
