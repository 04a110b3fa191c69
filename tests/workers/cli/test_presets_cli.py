"""``l0sweep presets`` and ``l0sweep submit --preset NAME [--epochs N] [--set PATH=VALUE]``
against a live API."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from service.settings import Settings
from tests.workers.cli.test_cli import TOKEN, live_api  # noqa: F401
from workers.cli import app
from workers.cli.presets import preset_body


def test_presets_lists_the_papers_experiments() -> None:
    result = CliRunner().invoke(app, ["presets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("mlp-l0", "mlp-l0-sep", "lenet5-l0", "lenet5-l0-sep", "wrn-28-10-cifar100"):
        assert name in result.output
    assert "219-214-100" in result.output


def test_preset_body_overrides() -> None:
    body = preset_body("lenet5-l0", epochs=3, sets=["training.lr=0.002", "name=quick", "x.y=[1]"])
    assert (body["training"]["epochs"], body["training"]["lr"], body["name"]) == (3, 0.002, "quick")
    assert body["x"] == {"y": [1]}  # unknown fields reach the API, which refuses them


def test_submit_a_preset(live_api: tuple[str, Settings], tmp_path: Path) -> None:  # noqa: F811
    url, _ = live_api
    env = {"L0SWEEP_URL": url, "L0SWEEP_TOKEN": TOKEN}
    cli = CliRunner()
    args = ["submit", "--preset", "lenet5-l0-sep", "--epochs", "3", "--set", "training.lr=0.002"]
    result = cli.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "submitted: 2 trials" in result.output  # the two weight-decay arms
    sweeps = httpx.get(f"{url}/api/v1/sweeps", trust_env=False).json()["items"]
    spec = sweeps[0]["spec"]
    assert (spec["training"]["epochs"], spec["training"]["lr"]) == (3, 0.002)
    assert spec["model"]["lambda_scales"] == [100.0, 5.0, 1.0, 100.0]

    unknown = cli.invoke(app, ["submit", "--preset", "nope"], env=env)
    assert unknown.exit_code == 1 and "no preset 'nope'" in unknown.output
    bad = cli.invoke(app, ["submit", "--preset", "mlp-l0", "--set", "training.ema=2"], env=env)
    assert bad.exit_code == 1 and "422" in bad.output
    neither = cli.invoke(app, ["submit"], env=env)
    assert neither.exit_code == 1 and "--preset" in neither.output
