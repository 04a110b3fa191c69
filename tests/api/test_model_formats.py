"""``GET /trials/{id}/model?format=...``: the format's file, 422 naming ``format``, 409 with
the reason (the files themselves are checked in tests/workers/tune/test_model_files.py)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service import repository as repo
from service.db import session_scope
from tests.api.conftest import AUTH
from tests.api.helpers import complete_trials, spec


def _sweep(client: TestClient) -> int:
    r = client.post("/api/v1/sweeps", json=spec(), headers=AUTH)
    assert r.status_code == 201
    return int(r.json()["id"])


def test_each_format_downloads_its_own_file(app: FastAPI, client: TestClient) -> None:
    files = {"torchscript": b"ts-file", "onnx": b"onnx-file", "pt2": b"pt2-file"}
    [trial_id] = complete_trials(app, _sweep(client), [(0.9, 0.5, 1e5)], model=files)[:1]
    default = client.get(f"/api/v1/trials/{trial_id}/model")
    assert default.status_code == 200 and default.content == b"ts-file"
    for fmt, suffix in (("torchscript", "pt"), ("onnx", "onnx"), ("pt2", "pt2")):
        r = client.get(f"/api/v1/trials/{trial_id}/model", params={"format": fmt})
        assert r.status_code == 200, r.text
        assert r.content == files[fmt]
        assert r.headers["content-type"] == "application/octet-stream"
        disposition = r.headers["content-disposition"]
        assert disposition == f'attachment; filename="trial-{trial_id}.{suffix}"'


def test_an_unknown_format_is_a_422_naming_format(app: FastAPI, client: TestClient) -> None:
    [trial_id] = complete_trials(app, _sweep(client), [(0.9, 0.5, 1e5)], model=b"ts")[:1]
    r = client.get(f"/api/v1/trials/{trial_id}/model", params={"format": "tflite"})
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["query", "format"]
    assert "onnx" in error["msg"]


def test_a_format_the_trial_cannot_produce_is_a_409_with_the_reason(
    app: FastAPI, client: TestClient
) -> None:
    files = {
        "torchscript": b"ts",
        "onnx": repo.ModelUnavailable("onnx export failed: Unsupported op aten::foo"),
        "pt2": b"pt2",
    }
    first, old = complete_trials(app, _sweep(client), [(0.9, 0.5, 1e5), (0.8, 0.6, 5e4)])[:2]
    complete_trials_with(app, first, files)
    complete_trials_with(app, old, b"ts-only")  # as recorded before formats existed
    r = client.get(f"/api/v1/trials/{first}/model", params={"format": "onnx"})
    assert r.status_code == 409
    assert r.json()["detail"] == (
        f"trial {first} has no onnx model: onnx export failed: Unsupported op aten::foo"
    )
    r = client.get(f"/api/v1/trials/{old}/model", params={"format": "pt2"})
    assert r.status_code == 409 and "completed before pt2" in r.json()["detail"]
    assert client.get(f"/api/v1/trials/{old}/model").content == b"ts-only"


def test_a_trial_without_a_model_is_still_a_404(app: FastAPI, client: TestClient) -> None:
    sweep_id = _sweep(client)
    trials = client.get(f"/api/v1/sweeps/{sweep_id}/trials").json()["items"]
    for fmt in ("torchscript", "onnx", "pt2"):
        r = client.get(f"/api/v1/trials/{trials[0]['id']}/model", params={"format": fmt})
        assert r.status_code == 404


def complete_trials_with(app: FastAPI, trial_id: int, files: repo.ModelFiles | bytes) -> None:
    with session_scope(app.state.l0sweep.engine) as s:
        trial = repo.get_trial(s, trial_id)
        repo.record_trial_result(s, trial_id, dict(trial.metrics or {}), files)
