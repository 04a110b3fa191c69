"""Issue 13 through the REST API: early stopping and budget specs (201 or 422 naming the
field), stopped trials in counts, trials, fronts and /metrics, and a budget sweep's best."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service import repository as repo
from service.db import session_scope
from service.settings import Settings
from tests.api.conftest import AUTH, TOKEN
from tests.api.helpers import spec
from tests.api.test_metrics import scrape

URL = "/api/v1/sweeps"
STOPPING = {"kind": "pareto", "grace_epochs": 1, "reduction_factor": 3}
DENSE_PARAMS, DENSE_FLOPS = 266_610, 532_810  # the 784-300-100-10 MLP of helpers.spec()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        api_tokens=[TOKEN],
        data_dir=tmp_path / "data",
        max_trials_per_sweep=50,
        metrics_refresh_s=0,
    )


def budget_spec(constraint: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    search = {"strategy": "budget", "constraint": constraint, "n_trials": 6}
    return spec(search=search, lambdas={"min": 0.001, "max": 1.0}, seeds=[0], **overrides)


def measures(accuracy: float, flops: float, stopped_epoch: int | None = None) -> dict[str, Any]:
    params = flops / 2
    return {
        "accuracy": accuracy,
        "sparsity": 1 - params / DENSE_PARAMS,
        "params": params,
        "params_dense": DENSE_PARAMS,
        "flops": flops,
        "flops_dense": DENSE_FLOPS,
        "expected_flops": flops,
        "expected_l0": params,
        "architecture": [10, 10, 10],
        "stopped_epoch": stopped_epoch,
    }


def add_trials(app: FastAPI, sweep_id: int, rows: list[dict[str, Any] | None]) -> list[int]:
    """Trials as a budget search adds them; a row's measures are recorded (None: pending)."""
    ids = []
    with session_scope(app.state.l0sweep.engine) as s:
        for i, row in enumerate(rows):
            trial = repo.add_trial(s, sweep_id, 0.01 * (i + 1), 0.6667, 0)
            if row is not None:
                repo.record_trial_result(s, trial.id, row, b"model")
            ids.append(trial.id)
    return ids


def test_a_budget_sweep_and_its_best_trial(app: FastAPI, client: TestClient) -> None:
    r = client.post(
        URL, json=budget_spec({"max_flops": 1e5}, early_stopping=STOPPING), headers=AUTH
    )
    assert r.status_code == 201, r.text
    sweep = r.json()
    assert (sweep["n_trials"], sweep["best"], sweep["counts"]["stopped"]) == (6, None, 0)
    assert sum(sweep["counts"].values()) == 0  # trials come as the search asks
    assert sweep["spec"]["search"]["constraint"] == {"max_flops": 1e5}
    assert sweep["spec"]["early_stopping"] == {**STOPPING, "reduction_factor": 3.0}
    sweep_id = sweep["id"]

    ids = add_trials(
        app,
        sweep_id,
        [
            measures(0.99, 4e5),  # most accurate, over the budget
            measures(0.95, 9e4, stopped_epoch=1),  # early-stopped, within it: not an answer
            measures(0.90, 5e4),  # completed, within it: the best
            None,
        ],
    )
    body = client.get(f"{URL}/{sweep_id}").json()
    assert body["counts"] == {
        "pending": 1,
        "running": 0,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
        "stopped": 1,
    }
    best = body["best"]
    assert best["id"] == ids[2] and best["status"] == "completed"
    assert best["stopped_epoch"] is None
    assert (best["lambda"], best["beta"], best["seed"]) == (0.03, 0.6667, 0)
    assert best["metrics"]["accuracy"] == 0.90 and best["metrics"]["flops"] == 5e4
    assert {"sparsity", "params"} <= set(best["metrics"])
    listed = client.get(URL).json()["items"]
    assert [s["best"]["id"] for s in listed if s["id"] == sweep_id] == [ids[2]]

    trials = client.get(f"{URL}/{sweep_id}/trials").json()["items"]
    assert [t["stopped_epoch"] for t in trials] == [None, 1, None, None]
    assert client.get(f"/api/v1/trials/{ids[1]}").json()["stopped_epoch"] == 1
    stopped_only = client.get(f"{URL}/{sweep_id}/trials", params={"status": "stopped"}).json()
    assert [t["id"] for t in stopped_only["items"]] == [ids[1]]

    front = client.get(f"{URL}/{sweep_id}/pareto", params={"objectives": "accuracy,flops"})
    assert front.status_code == 200, front.text
    assert [(t["id"], t["stopped"]) for t in front.json()["items"]] == [
        (ids[0], False),
        (ids[1], True),
        (ids[2], False),
    ]
    history = client.get(f"{URL}/{sweep_id}/pareto/history").json()
    assert history["items"][-1]["completed"] == 3

    gauges = scrape(client)["l0sweep_trials"]
    assert gauges[("status=stopped",)] == 1 and gauges[("status=completed",)] == 2

    # Cancelling leaves the stopped trial as it is; the best stays.
    cancelled = client.post(f"{URL}/{sweep_id}/cancel", headers=AUTH).json()
    assert cancelled["counts"]["stopped"] == 1 and cancelled["counts"]["cancelled"] == 1
    assert cancelled["best"]["id"] == ids[2]


def test_a_budget_sweep_nothing_meets_has_no_best(app: FastAPI, client: TestClient) -> None:
    sweep_id = client.post(URL, json=budget_spec({"min_sparsity": 0.99}), headers=AUTH).json()["id"]
    add_trials(app, sweep_id, [measures(0.9, 4e5), measures(0.8, 2e5, stopped_epoch=1)])
    assert client.get(f"{URL}/{sweep_id}").json()["best"] is None


def _refused(client: TestClient, body: dict[str, Any] | str) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"content": body}
    headers = {**AUTH, "Content-Type": "application/json"}
    r = client.post(URL, headers=headers, **kwargs)
    assert r.status_code == 422, r.text
    return list(r.json()["detail"])


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        (
            budget_spec({"max_flops": 35}),
            ["body", "search", "budget", "constraint", "max_flops"],
            "below the 36 FLOPs of the smallest mlp on mnist",
        ),
        (
            budget_spec({"max_params": 10}),
            ["body", "search", "budget", "constraint", "max_params"],
            "below the 24 parameters",
        ),
        (
            budget_spec({"min_sparsity": 0.99995}),
            ["body", "search", "budget", "constraint", "min_sparsity"],
            "above the sparsity",
        ),
        (
            budget_spec({"min_sparsity": 1.5}),
            ["body", "search", "budget", "constraint", "min_sparsity"],
            "less than 1",
        ),
        (
            budget_spec({"max_flops": 1e5, "max_params": 1e4}),
            ["body", "search", "budget", "constraint"],
            "takes one kind of constraint, got max_flops and max_params",
        ),
        (
            budget_spec({"max_gpu_hours": 3}),
            ["body", "search", "budget", "constraint", "max_gpu_hours"],
            "Extra inputs",
        ),
        (
            spec(early_stopping={**STOPPING, "grace_epochs": 2}),  # training.epochs is 2
            ["body", "early_stopping", "grace_epochs"],
            "must be below training.epochs=2",
        ),
    ],
)
def test_bad_specs_are_refused_naming_the_field(
    client: TestClient, body: dict[str, Any], loc: list[str], words: str
) -> None:
    (error,) = _refused(client, body)
    assert error["loc"] == loc and words in error["msg"]
    assert client.get(URL).json()["total"] == 0  # nothing stored


@pytest.mark.parametrize(
    "raw",
    [
        '{"max_flops": NaN}',
        '{"max_flops": Infinity}',
        '{"max_flops": 1e309}',
        '{"min_sparsity": -Infinity}',
    ],
)
def test_non_finite_constraints_are_a_422(client: TestClient, raw: str) -> None:
    body = (
        '{"model": {"arch": "mlp"}, "dataset": "mnist", "lambdas": {"min": 0.01, "max": 1},'
        f' "search": {{"strategy": "budget", "n_trials": 5, "constraint": {raw}}}}}'
    )
    (error,) = _refused(client, body)
    assert error["loc"][:4] == ["body", "search", "budget", "constraint"]


def test_non_finite_reduction_factor_is_a_422(client: TestClient) -> None:
    body = (
        '{"model": {"arch": "mlp"}, "dataset": "mnist", "lambdas": [0.1],'
        ' "early_stopping": {"kind": "pareto", "grace_epochs": 5, "reduction_factor": NaN}}'
    )
    (error,) = _refused(client, body)
    assert error["loc"] == ["body", "early_stopping", "reduction_factor"]
