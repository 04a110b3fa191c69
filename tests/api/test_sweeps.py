from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from service import repository as repo
from service.db import session_scope
from tests.api.conftest import AUTH
from tests.api.helpers import complete_trials, spec

URL = "/api/v1/sweeps"


def total_sweeps(client: TestClient) -> int:
    return int(client.get(URL).json()["total"])


def test_create_sweep(client: TestClient) -> None:
    r = client.post(URL, json=spec(), headers=AUTH)
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"{URL}/{body['id']}"
    assert (body["status"], body["n_trials"], body["name"]) == ("pending", 6, "mnist-mlp")
    assert body["counts"] == {
        "pending": 6,
        "running": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "stopped": 0,
    }
    assert body["best"] is None  # a grid sweep has none
    assert body["spec"]["lambdas"] == [0.01, 0.1, 1.0]
    assert body["created_at"].endswith("Z") or "+00:00" in body["created_at"]
    assert body["started_at"] is None and body["finished_at"] is None
    got = client.get(r.headers["location"])
    assert got.status_code == 200 and got.json() == body


def test_second_token_is_accepted(client: TestClient) -> None:
    r = client.post(URL, json=spec(), headers={"Authorization": "Bearer second-token"})
    assert r.status_code == 201


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dGVzdC10b2tlbg=="}],
)
def test_writes_need_a_valid_token(client: TestClient, headers: dict[str, str]) -> None:
    r = client.post(URL, json=spec(), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    assert client.post(f"{URL}/{sweep_id}/cancel", headers=headers).status_code == 401
    assert total_sweeps(client) == 1
    assert client.get(f"{URL}/{sweep_id}").json()["status"] == "pending"


BAD_SPECS: list[tuple[dict[str, Any], str]] = [
    ({"model": {"arch": "resnet"}}, "model"),
    ({"dataset": "imagenet"}, "dataset"),
    ({"model": {"arch": "wrn"}}, "dataset"),  # wrn does not train on mnist
    ({"lambdas": [0.1, -1.0]}, "lambdas"),
    ({"lambdas": [0.0]}, "lambdas"),
    ({"betas": [-0.5]}, "betas"),
    ({"lambdas": []}, "lambdas"),
    ({"betas": []}, "betas"),
    ({"seeds": []}, "seeds"),
    ({"training": {"epochs": 0}}, "training"),
    ({"surprise": True}, "surprise"),
    ({"lambdas": {"logspace": [-3, 0, 30]}}, "lambdas"),  # 30 x 1 x 2 = 60 > 50 allowed
    (
        {"lambdas": {"min": 0.1, "max": 1.0}, "search": {"strategy": "random", "n_trials": 51}},
        "n_trials",
    ),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_SPECS)
def test_bad_specs_get_422_naming_the_field_and_store_nothing(
    client: TestClient, overrides: dict[str, Any], field: str
) -> None:
    r = client.post(URL, json=spec(**overrides), headers=AUTH)
    assert r.status_code == 422, r.text
    locs = [err["loc"] for err in r.json()["detail"]]
    assert any(field in loc for loc in locs), locs
    assert total_sweeps(client) == 0


def test_malformed_json_is_422(client: TestClient) -> None:
    r = client.post(URL, content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422
    assert total_sweeps(client) == 0


def test_oversized_body_is_413(client: TestClient) -> None:
    big = spec(name="x" * 100, lambdas=[1e-3 * (i + 1) for i in range(10_000)])
    r = client.post(URL, json=big, headers=AUTH)
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: streamed (chunked)
        yield b'{"name": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    r = client.post(URL, content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413
    assert total_sweeps(client) == 0


def test_small_chunked_body_passes_the_limit(client: TestClient) -> None:
    import json

    payload = json.dumps(spec()).encode()
    r = client.post(
        URL,
        content=iter([payload[:10], payload[10:]]),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert r.status_code == 201, r.text


def test_same_idempotency_key_gives_one_sweep(client: TestClient) -> None:
    headers = {**AUTH, "Idempotency-Key": "k-123"}
    first = client.post(URL, json=spec(), headers=headers)
    second = client.post(URL, json=spec(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["location"] == first.headers["location"]
    assert total_sweeps(client) == 1
    other = client.post(URL, json=spec(name="other"), headers=headers)
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert client.post(URL, json=spec(), headers=AUTH).json()["id"] != first.json()["id"]
    assert total_sweeps(client) == 2


def test_concurrent_requests_with_one_idempotency_key(client: TestClient) -> None:
    headers = {**AUTH, "Idempotency-Key": "race"}
    ids: list[int] = []
    barrier = threading.Barrier(4)

    def post() -> None:
        barrier.wait()
        r = client.post(URL, json=spec(), headers=headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 4 and len(set(ids)) == 1
    assert total_sweeps(client) == 1


def test_list_sweeps_newest_first_paginated(client: TestClient) -> None:
    ids = [client.post(URL, json=spec(name=f"s{i}"), headers=AUTH).json()["id"] for i in range(4)]
    r = client.get(URL, params={"limit": 2, "offset": 1})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 4
    assert [s["id"] for s in body["items"]] == [ids[2], ids[1]]
    assert body["items"][0]["counts"]["pending"] == 6
    assert [s["id"] for s in client.get(URL).json()["items"]] == ids[::-1]
    assert client.get(URL, params={"limit": 0}).status_code == 422
    assert client.get(URL, params={"offset": -1}).status_code == 422


def test_unknown_sweep_is_404(client: TestClient) -> None:
    for path in ("", "/trials", "/pareto"):
        r = client.get(f"{URL}/424242{path}")
        assert r.status_code == 404, path
        assert "424242" in r.json()["detail"]
    assert client.post(f"{URL}/424242/cancel", headers=AUTH).status_code == 404
    assert client.get(f"{URL}/0").status_code == 422
    assert client.get(f"{URL}/abc").status_code == 422


def test_cancel(client: TestClient, app: FastAPI) -> None:
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    complete_trials(app, sweep_id, [(0.9, 0.5, 1000.0)])
    r = client.post(f"{URL}/{sweep_id}/cancel", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "cancelled" and body["finished_at"] is not None
    assert body["counts"]["cancelled"] == 5 and body["counts"]["completed"] == 1
    assert client.post(f"{URL}/{sweep_id}/cancel", headers=AUTH).status_code == 200


def test_cancelling_a_finished_sweep_is_409(client: TestClient, app: FastAPI) -> None:
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    complete_trials(app, sweep_id, [(0.9, 0.5, 1000.0)] * 6)
    with session_scope(app.state.l0sweep.engine) as s:
        repo.finish_sweep(s, sweep_id)
    r = client.post(f"{URL}/{sweep_id}/cancel", headers=AUTH)
    assert r.status_code == 409
    assert "completed" in r.json()["detail"]
    assert client.get(f"{URL}/{sweep_id}").json()["status"] == "completed"


def test_trials_list(client: TestClient, app: FastAPI) -> None:
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    complete_trials(app, sweep_id, [(0.97, 0.6, 90_000.0)])
    r = client.get(f"{URL}/{sweep_id}/trials")
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 6
    first, second = body["items"][:2]
    assert set(first) >= {
        "id",
        "sweep_id",
        "status",
        "lambda",
        "beta",
        "seed",
        "epochs_done",
        "node",
        "metrics",
    }
    assert (first["lambda"], first["beta"], first["seed"]) == (0.01, 0.6667, 0)
    assert (first["status"], first["epochs_done"]) == ("completed", 1)
    m = first["metrics"]
    assert m["accuracy"] == 0.97 and m["error"] == pytest.approx(0.03)
    assert m["params_dense"] == 266_200 and isinstance(m["params"], int)
    assert m["architecture"] == [784, 300, 100]
    assert (second["status"], second["metrics"]) == ("pending", None)
    r = client.get(f"{URL}/{sweep_id}/trials", params={"status": "pending", "limit": 2})
    assert r.json()["total"] == 5 and len(r.json()["items"]) == 2
    assert client.get(f"{URL}/{sweep_id}/trials", params={"status": "bogus"}).status_code == 422


def test_pareto(client: TestClient, app: FastAPI) -> None:
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    rows = [
        (0.98, 0.50, 260_000.0),
        (0.97, 0.70, 150_000.0),
        (0.96, 0.90, 50_000.0),
        (0.95, 0.60, 200_000.0),  # dominated by the second
        (0.97, 0.70, 150_000.0),  # duplicate of the second: also on the front
    ]
    ids = complete_trials(app, sweep_id, rows)
    r = client.get(f"{URL}/{sweep_id}/pareto")
    assert r.status_code == 200, r.text
    front = r.json()
    assert front["objectives"] == ["accuracy", "sparsity", "flops"]
    assert front["directions"] == ["maximize", "maximize", "minimize"]
    assert sorted(t["id"] for t in front["items"]) == sorted([ids[0], ids[1], ids[2], ids[4]])
    assert front["items"][0]["id"] == ids[0]  # best accuracy first
    assert 0 < front["hypervolume"] < 1

    r = client.get(f"{URL}/{sweep_id}/pareto", params={"objectives": "accuracy,params"})
    front = r.json()
    # 2-D by hand: fractions (error, params/params_dense) = (.02,.5), (.03,.3), (.04,.1)
    assert front["hypervolume"] == pytest.approx(0.01 * 0.5 + 0.01 * 0.7 + 0.96 * 0.9)
    r = client.get(
        f"{URL}/{sweep_id}/pareto",
        params={"objectives": "accuracy,sparsity", "max_flops": 160_000, "min_accuracy": 0.965},
    )
    assert sorted(t["id"] for t in r.json()["items"]) == sorted([ids[1], ids[4]])
    for bad in ("accuracy", "accuracy,speed", "flops,flops", "a,b,c,d"):
        r = client.get(f"{URL}/{sweep_id}/pareto", params={"objectives": bad})
        assert r.status_code == 422, bad
        assert r.json()["detail"][0]["loc"] == ["query", "objectives"]
    r = client.get(f"{URL}/{sweep_id}/pareto", params={"max_flops": "nan"})
    assert r.status_code == 422


def test_each_app_owns_its_front_cache(client: TestClient, app: FastAPI) -> None:
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    complete_trials(app, sweep_id, [(0.98, 0.5, 260_000.0), (0.96, 0.9, 50_000.0)])
    # A second app in the same process, on the same database, that caches nothing.
    settings = app.state.l0sweep.settings.model_copy(update={"pareto_cache_size": 0})
    second = create_app(settings)
    with TestClient(second) as other:
        for c in (client, other, client, other):
            assert len(c.get(f"{URL}/{sweep_id}/pareto").json()["items"]) == 2
    off, cache = second.state.l0sweep.front_cache, app.state.l0sweep.front_cache
    assert (off.maxsize, len(off)) == (0, 0)
    assert (cache.maxsize, len(cache)) == (256, 1)  # not resized by the other app
