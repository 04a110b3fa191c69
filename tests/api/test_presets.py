"""``GET /presets`` and ``GET /presets/{name}``; every preset round-trips through POST /sweeps;
the recipe fields' errors are 422 naming the field; trials show their weight decay."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.presets import PRESETS
from tests.api.conftest import AUTH
from tests.api.helpers import complete_trials, spec

URL = "/api/v1/presets"


def test_list_and_read_presets(client: TestClient) -> None:
    r = client.get(URL)
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == len(body["items"]) == len(PRESETS)
    names = [p["name"] for p in body["items"]]
    assert {"mlp-l0", "mlp-l0-sep", "lenet5-l0", "lenet5-l0-sep"} <= set(names)
    assert {"wrn-28-10-cifar10", "wrn-28-10-cifar100"} <= set(names)
    one = client.get(f"{URL}/lenet5-l0-sep").json()
    assert set(one) == {"name", "title", "description", "spec", "paper"}
    assert one["paper"] == {"error": 1.0, "architecture": "9-18-65-25", "source": "Table 1"}
    assert one["spec"]["model"]["lambda_scales"] == [100.0, 5.0, 1.0, 100.0]
    missing = client.get(f"{URL}/nope")
    assert missing.status_code == 404
    assert "no preset 'nope'" in missing.json()["detail"]


@pytest.mark.parametrize("name", [p.name for p in PRESETS])
def test_each_preset_round_trips_through_post_sweeps(client: TestClient, name: str) -> None:
    preset = client.get(f"{URL}/{name}").json()
    r = client.post("/api/v1/sweeps", json=preset["spec"], headers=AUTH)
    assert r.status_code == 201, r.text
    sweep = r.json()
    assert sweep["spec"] == preset["spec"]
    n_wd = len(w) if isinstance(w := preset["spec"]["training"]["weight_decay"], list) else 1
    assert sweep["n_trials"] == n_wd  # one λ, one β, one seed; the weight-decay arms
    trials = client.get(f"/api/v1/sweeps/{sweep['id']}/trials").json()["items"]
    wds = w if isinstance(w, list) else [w]
    assert [t["weight_decay"] for t in trials] == wds


BAD_RECIPES: list[tuple[dict[str, Any], str]] = [
    ({"model": {"arch": "mlp", "hidden": [300, 100], "lambda_scales": [1, 2]}}, "lambda_scales"),
    ({"model": {"arch": "lenet5", "lambda_scales": [1, 2, 3]}}, "lambda_scales"),
    ({"training": {"droprate_init": [0.2, 0.5]}}, "training"),
    ({"training": {"ema": 1.0}}, "ema"),
    ({"training": {"lr_milestones": [10, 5]}}, "lr_milestones"),
    ({"training": {"weight_decay": [1e-4, 1e-4]}}, "weight_decay"),
    ({"training": {"optimizer": "sgd", "momentum": 0.0}}, "training"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_RECIPES)
def test_bad_recipe_fields_get_422_naming_the_field(
    client: TestClient, overrides: dict[str, Any], field: str
) -> None:
    r = client.post("/api/v1/sweeps", json=spec(**overrides), headers=AUTH)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(field in err["loc"] for err in detail), detail
    if field == "training":  # a cross-field rule: the message names the field
        assert any("training." in err["msg"] for err in detail), detail


def test_trial_metrics_show_accuracy_raw(client: TestClient, app: FastAPI) -> None:
    sweep = client.post(
        "/api/v1/sweeps", json=spec(training={"weight_decay": [5e-4, 0.0]}), headers=AUTH
    ).json()
    assert sweep["n_trials"] == 3 * 2 * 2
    complete_trials(app, sweep["id"], [(0.9, 0.5, 100.0)])
    trials = client.get(f"/api/v1/sweeps/{sweep['id']}/trials").json()["items"]
    assert [t["weight_decay"] for t in trials[:2]] == [5e-4, 0.0]
    assert trials[0]["metrics"]["accuracy_raw"] is None  # not reported by this fake result
