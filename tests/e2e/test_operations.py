"""What an operator watches, during a real sweep (real uvicorn, the runner on the shared
3-node Ray cluster, real MNIST): /metrics counters move and its gauges match GET /sweeps;
with JSON logs, the runner's and the trainables' lines parse and carry the ids; every
trial has its model in every format."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from ray.cluster_utils import Cluster

from api.main import create_app
from service.logs import configure_logging
from service.settings import Settings
from workers.cli.client import ApiClient
from workers.cli.embedded import EmbeddedService
from workers.tune.runner import RunnerOptions

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TOKEN = "ops-token"
EPOCHS = 3
SPEC = {
    "name": "ops",
    "model": {"arch": "mlp", "hidden": [300, 100]},
    "dataset": "mnist",
    "lambdas": [0.1, 3.0],
    "training": {"epochs": EPOCHS},
    "fuse": 1,
}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """This process's log lines (the runner's) as JSON, into a buffer."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    workers_level = logging.getLogger("workers").level
    stream = io.StringIO()
    configure_logging("json", level=logging.WARNING, stream=stream)
    logging.getLogger("workers").setLevel(logging.INFO)
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("workers").setLevel(workers_level)
    configure_logging.__globals__["_active"] = None


def scrape(base: str) -> dict[str, dict[tuple[str, ...], float]]:
    r = httpx.get(f"{base}/metrics", trust_env=False, timeout=30)
    assert r.status_code == 200, r.text
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def epochs_total(metrics: dict[str, dict[tuple[str, ...], float]]) -> float:
    return metrics["l0sweep_trial_epochs_total"][()]


def trainable_lines(cluster: Cluster, sweep_id: int) -> list[dict[str, Any]]:
    """The trainables' JSON lines about ``sweep_id``, from every node's worker logs."""
    lines = []
    dirs = {Path(n.get_logs_dir_path()) for n in cluster.list_all_nodes()}
    for path in sorted(p for d in dirs for p in d.glob("worker-*.err")):
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if raw.startswith("{") and '"workers.tune.trial"' in raw:
                line = json.loads(raw)
                if line.get("sweep_id") == sweep_id:
                    lines.append(line)
    return lines


def test_an_operator_watches_a_real_sweep(
    ray_cluster: Cluster, tmp_path: Path, json_log: io.StringIO
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'l0sweep.db'}",
        api_tokens=[TOKEN],
        metrics_refresh_s=0,
    )
    options = RunnerOptions(storage_path=str(tmp_path / "ray"))
    with EmbeddedService(settings, app=create_app(settings), runner_options=options) as service:
        base = service.url
        assert epochs_total(scrape(base)) == 0
        with ApiClient(base, TOKEN) as client:
            sweep_id = client.submit(SPEC)["id"]
            seen: list[tuple[str, float]] = []
            deadline = time.monotonic() + 600
            while True:
                status = client.sweep(sweep_id)["status"]
                metrics = scrape(base)
                seen.append((status, epochs_total(metrics)))
                if status in ("completed", "failed", "cancelled"):
                    break
                assert time.monotonic() < deadline, seen
                time.sleep(0.3)
            assert status == "completed", seen
            final = scrape(base)
            sweeps = client._json(client._http.get("/sweeps"))["items"]
            trials = client.trials(sweep_id)

            # Every trial has its model in every format, made by the real trainable.
            for trial in trials:
                for fmt in ("torchscript", "onnx", "pt2"):
                    r = client._http.get(f"/trials/{trial['id']}/model", params={"format": fmt})
                    assert r.status_code == 200 and len(r.content) > 1000, (fmt, r.text[:200])

    # The counter moved while the sweep ran, never backwards, and ends at every epoch.
    values = [v for _, v in seen]
    assert values == sorted(values)
    assert any(0 < v < 2 * EPOCHS for s, v in seen if s == "running"), seen
    assert epochs_total(final) == 2 * EPOCHS
    assert final["l0sweep_trial_epoch_seconds_count"][()] == 2 * EPOCHS
    assert final["l0sweep_trial_epoch_seconds_sum"][()] > 0
    # The gauges are what GET /sweeps says.
    for status in ("pending", "running", "completed", "failed", "cancelled"):
        want = sum(s["counts"].get(status, 0) for s in sweeps)
        assert final["l0sweep_trials"][(("status", status),)] == want, status
        want = sum(s["status"] == status for s in sweeps)
        assert final["l0sweep_sweeps"][(("status", status),)] == want, status
    [(runner, age)] = final["l0sweep_runner_heartbeat_age_seconds"].items()
    assert 0 <= age < 60, runner
    requests = final["http_requests_total"]
    assert requests[
        (("handler", "/api/v1/sweeps/{sweep_id}"), ("method", "GET"), ("status", "2xx"))
    ]

    # The runner's lines: one JSON object each, the ids always there.
    runner_lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert runner_lines
    for line in runner_lines:
        assert {"ts", "level", "logger", "message", "sweep_id", "trial_id", "pack"} <= set(line)
    claimed = [line for line in runner_lines if line["message"] == f"claimed sweep {sweep_id}"]
    assert claimed and claimed[0]["logger"] == "workers.tune.runner"
    ended = [line for line in runner_lines if line["message"].startswith(f"sweep {sweep_id}: ")]
    assert len(ended) == 1 and ended[0]["sweep_id"] == sweep_id
    assert ended[0]["message"].startswith(f"sweep {sweep_id}: completed (2 trial(s) completed")

    # The trainables' lines (Ray worker logs): the sweep, the pack, the trial of each.
    ids = {t["id"] for t in trials}
    trial_lines = trainable_lines(ray_cluster, sweep_id)
    epochs = [line for line in trial_lines if line["message"].startswith("epoch ")]
    assert len(epochs) >= 2 * EPOCHS, trial_lines  # a retried epoch may appear twice
    for line in trial_lines:
        assert line["trial_id"] in ids and line["pack"], line
    assert {line["trial_id"] for line in epochs} == ids
    exported = [line for line in trial_lines if line["message"] == "model files exported"]
    assert {line["trial_id"] for line in exported} == ids
