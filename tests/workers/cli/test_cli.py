"""The ``l0sweep`` CLI: every command has --help; the client commands against a live API
(uvicorn on loopback, no runner: results are recorded directly through the repository)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import typer.main
from typer.testing import CliRunner

from api.main import create_app
from l0models import MLPConfig, build_model, compact_model_bytes
from service import repository
from service.db import create_engine_for, session_scope
from service.settings import Settings
from service.spec import SweepSpec
from workers.cli import app
from workers.cli.embedded import EmbeddedService

TOKEN = "cli-token"
COMMANDS = (
    "serve",
    "runner",
    "worker",
    "submit",
    "status",
    "pareto",
    "plot",
    "cancel",
    "export",
    "demo",
    "presets",
)


def test_every_command_has_help() -> None:
    runner = CliRunner()
    group = typer.main.get_command(app)
    assert set(group.commands) == set(COMMANDS)  # type: ignore[attr-defined]
    for name in COMMANDS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_worker_runs_ray_start_with_the_head_address(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("workers.tune.cluster.run_worker", lambda cmd: calls.append(cmd) or 0)
    result = CliRunner().invoke(app, ["worker", "--address", "10.0.0.1:6379", "--num-gpus", "2"])
    assert result.exit_code == 0, result.output
    (cmd,) = calls
    assert cmd[1:] == [
        "start",
        "--address=10.0.0.1:6379",
        "--disable-usage-stats",
        "--num-gpus=2",
        "--block",
    ]


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'l0sweep.db'}",
        api_tokens=[TOKEN],
    )
    service = EmbeddedService(settings, app=create_app(settings), with_runner=False)
    with service:
        yield service.url, settings


def _measures(accuracy: float, sparsity: float) -> dict[str, object]:
    return {
        "accuracy": accuracy,
        "error": 1 - accuracy,
        "params": 1000 * (1 - sparsity),
        "params_dense": 1000,
        "sparsity": sparsity,
        "flops": 2000 * (1 - sparsity),
        "flops_dense": 2000,
        "expected_flops": 2000 * (1 - sparsity),
        "expected_l0": 1000 * (1 - sparsity),
        "architecture": [10, 5],
    }


def test_submit_status_pareto_export_cancel(live_api: tuple[str, Settings], tmp_path: Path) -> None:
    url, settings = live_api
    env = {"L0SWEEP_URL": url, "L0SWEEP_TOKEN": TOKEN}
    cli = CliRunner()
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "name": "cli",
                "model": {"arch": "mlp", "hidden": [10, 5]},
                "dataset": "synthetic",
                "lambdas": [0.1, 1.0, 3.0],
                "training": {"epochs": 1},
            }
        )
    )
    result = cli.invoke(app, ["submit", str(spec)], env=env)
    assert result.exit_code == 0, result.output
    assert "sweep 1 submitted: 3 trials" in result.output

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"arch": "resnet"}, "dataset": "mnist", "lambdas": [1]}))
    result = cli.invoke(app, ["submit", str(bad)], env=env)
    assert result.exit_code == 1 and "HTTP 422" in result.output

    model = build_model(MLPConfig(hidden=(10, 5)), lam=0.1)
    model_bytes = compact_model_bytes(model)
    engine = create_engine_for(settings.resolved_database_url)
    with session_scope(engine) as session:
        trials = repository.list_trials(session, 1).items
        ids = [t.id for t in trials]
        for trial, (acc, sp) in zip(trials, [(0.95, 0.2), (0.9, 0.6), (0.8, 0.5)], strict=True):
            repository.mark_trial_running(session, trial.id, node="host:node1")
            repository.record_trial_epoch(session, trial.id, {"epoch": 1, "loss": 1.0})
            repository.record_trial_result(session, trial.id, _measures(acc, sp), model_bytes)
        repository.finish_sweep(session, 1)
    engine.dispose()

    result = cli.invoke(app, ["status", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert "completed" in result.output and "3/3 trial-epochs" in result.output

    result = cli.invoke(app, ["pareto", "1", "--objectives", "accuracy,sparsity"], env=env)
    assert result.exit_code == 0, result.output
    assert "2 trial(s) on the front" in result.output  # (0.8, 0.5) is dominated by (0.9, 0.6)

    svg = tmp_path / "front.svg"
    result = cli.invoke(
        app, ["plot", "1", "--out", str(svg), "--objectives", "accuracy,sparsity"], env=env
    )
    assert result.exit_code == 0, result.output
    assert svg.read_text().count('class="front"') == 2 * 2  # 2 front trials, 2 panels

    target = tmp_path / "model.pt"
    result = cli.invoke(app, ["export", str(ids[1]), str(target)], env=env)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == model_bytes
    loaded = torch.jit.load(str(target))
    assert loaded(torch.rand(2, 1, 28, 28)).shape == (2, 10)

    result = cli.invoke(app, ["submit", str(spec)], env=env)
    assert "sweep 2 submitted" in result.output
    result = cli.invoke(app, ["cancel", "2"], env=env)
    assert result.exit_code == 0 and "sweep 2: cancelled" in result.output
    result = cli.invoke(app, ["status", "99"], env=env)
    assert result.exit_code == 1 and "HTTP 404" in result.output


def test_export_picks_the_format_from_the_option_or_the_suffix(
    live_api: tuple[str, Settings], tmp_path: Path
) -> None:
    url, settings = live_api
    env = {"L0SWEEP_URL": url, "L0SWEEP_TOKEN": TOKEN}
    cli = CliRunner()
    spec = {"model": {"arch": "mlp", "hidden": [10, 5]}, "dataset": "synthetic", "lambdas": [1]}
    files = {"torchscript": b"ts", "onnx": b"onnx", "pt2": repository.ModelUnavailable("no")}
    engine = create_engine_for(settings.resolved_database_url)
    with session_scope(engine) as session:
        sweep = repository.create_sweep(session, SweepSpec.model_validate(spec))
        trial_id = repository.list_trials(session, sweep.id).items[0].id
        repository.record_trial_result(session, trial_id, _measures(0.9, 0.5), files)
    engine.dispose()

    cases = [  # (path, extra args, file written)
        ("model.onnx", [], b"onnx"),
        ("model.pt", [], b"ts"),
        ("model", [], b"ts"),  # no suffix: TorchScript, as before
        ("model.bin", ["--format", "onnx"], b"onnx"),
        ("model.ONNX", ["--format", "ONNX"], b"onnx"),
    ]
    for name, extra, content in cases:
        target = tmp_path / name
        result = cli.invoke(app, ["export", str(trial_id), str(target), *extra], env=env)
        assert result.exit_code == 0, (name, result.output)
        assert target.read_bytes() == content, name
    # A suffix naming another format than --format, and a format the trial has not.
    result = cli.invoke(
        app, ["export", str(trial_id), str(tmp_path / "x.pt2"), "--format", "onnx"], env=env
    )
    assert result.exit_code == 1 and "named like a pt2 file" in result.output
    result = cli.invoke(app, ["export", str(trial_id), str(tmp_path / "x.pt2")], env=env)
    assert result.exit_code == 1 and "HTTP 409" in result.output and "no pt2 model" in result.output
    result = cli.invoke(app, ["export", str(trial_id), str(tmp_path / "y"), "--format", "tflite"])
    assert result.exit_code == 2 and not (tmp_path / "y").exists()
