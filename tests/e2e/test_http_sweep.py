"""A sweep end to end over real HTTP: uvicorn on loopback serving the real API, the runner
driving Ray Tune on a real (local, 3-node) Ray cluster, real MNIST."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch
from ray.cluster_utils import Cluster

from api.main import create_app
from l0models import load_dataset
from service.settings import Settings
from workers.cli.client import ApiClient, ApiError
from workers.cli.embedded import EmbeddedService
from workers.tune.runner import RunnerOptions

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TOKEN = "e2e-token"
MEASURES = {
    "accuracy",
    "error",
    "sparsity",
    "params",
    "params_dense",
    "flops",
    "flops_dense",
    "expected_flops",
    "expected_l0",
    "architecture",
}


def test_sweep_over_http_from_post_to_model_download(ray_cluster: Cluster, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'l0sweep.db'}",
        api_tokens=[TOKEN],
    )
    options = RunnerOptions(storage_path=str(tmp_path / "ray"))
    spec = {
        "name": "e2e",
        "model": {"arch": "mlp", "hidden": [300, 100]},
        "dataset": "mnist",
        "lambdas": [0.1, 3.0],
        "training": {"epochs": 1},
        "fuse": 1,
    }
    with EmbeddedService(settings, app=create_app(settings), runner_options=options) as service:
        assert service.url.startswith("http://127.0.0.1:")
        with ApiClient(service.url, "wrong-token") as intruder, pytest.raises(ApiError) as err:
            intruder.submit(spec)
        assert err.value.status_code in (401, 403)

        with ApiClient(service.url, TOKEN) as client:
            created = client.submit(spec, idempotency_key="e2e-1")
            assert created["status"] == "pending" and created["n_trials"] == 2
            # Same key: the same sweep, not a second one.
            assert client.submit(spec, idempotency_key="e2e-1")["id"] == created["id"]

            final = client.wait(created["id"], poll_s=0.5, timeout_s=300)
            assert final["status"] == "completed", final
            assert final["counts"]["completed"] == 2

            trials = client.trials(created["id"])
            assert len(trials) == 2
            for trial in trials:
                assert trial["status"] == "completed" and trial["epochs_done"] == 1
                assert trial["node"]
                assert set(trial["metrics"]) >= MEASURES, trial["metrics"]
                m = trial["metrics"]
                assert 0.0 < m["accuracy"] <= 1.0 and 0.0 <= m["sparsity"] <= 1.0
                assert m["params"] <= m["params_dense"] and m["flops"] <= m["flops_dense"]

            front = client.pareto(created["id"], "accuracy,sparsity,flops")
            assert front["objectives"] == ["accuracy", "sparsity", "flops"]
            assert front["items"] and 0.0 <= front["hypervolume"] <= 1.0
            best = max(front["items"], key=lambda t: t["metrics"]["accuracy"])

            path = client.download_model(best["id"], tmp_path / "model.pt")
            # No server-side state needed: plain HTTP works too.
            raw = httpx.get(f"{service.url}/api/v1/trials/{best['id']}/model", trust_env=False)
            assert raw.status_code == 200 and raw.content == path.read_bytes()

    model = torch.jit.load(str(path))
    model.eval()
    data = load_dataset("mnist")
    with torch.no_grad():
        logits = torch.cat([model(data.x_test[i : i + 2000]) for i in range(0, 10_000, 2000)])
    accuracy = (logits.argmax(1) == data.y_test).float().mean().item()
    # The compacted model equals the gated one up to float rounding: at most a couple of
    # borderline test images may flip.
    assert accuracy == pytest.approx(best["metrics"]["accuracy"], abs=2e-4)
