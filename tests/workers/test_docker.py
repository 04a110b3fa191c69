"""docker/: what can be checked without a Docker engine.

The compose file is validated by ``docker-compose config`` (Debian's docker-compose works
offline), the Dockerfiles by hadolint, and every command the containers run is parsed by
the real ``l0sweep`` CLI so a renamed option cannot go unnoticed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from workers.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILES = [DOCKER / "api.Dockerfile", DOCKER / "worker.Dockerfile"]
SECRETS = {"L0SWEEP_API_TOKENS": "tok", "RAY_AUTH_TOKEN": "ray-token"}


def _compose(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed (scripts/ensure_services.sh installs it)")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [exe, "-f", str(COMPOSE), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = _compose(SECRETS)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def test_compose_has_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "ray-head", "api", "worker"}


def test_compose_reserves_the_gpus_for_workers(compose: dict[str, Any]) -> None:
    devices = compose["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_compose_api_uses_postgres_and_the_ray_head(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    env = api["environment"]
    assert env["L0SWEEP_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["L0SWEEP_DATABASE_URL"]
    assert env["L0SWEEP_ENVIRONMENT"] == "prod"
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert "--ray-address=ray-head:6379" in api["command"]
    head = compose["services"]["ray-head"]
    assert "--port=6379" in head["command"] and "--head" in head["command"]


def test_compose_refuses_to_start_without_secrets() -> None:
    result = _compose({})
    assert result.returncode != 0
    assert "L0SWEEP_API_TOKENS" in result.stderr or "RAY_AUTH_TOKEN" in result.stderr


def test_compose_nodes_share_checkpoint_storage(compose: dict[str, Any]) -> None:
    # Ray Tune writes checkpoints from the workers and the driver reads them back.
    for name in ("ray-head", "api", "worker"):
        volumes = compose["services"][name]["volumes"]
        assert any(str(v).startswith("l0sweep-data:/data") for v in volumes), (name, volumes)


def _cli_args(service: dict[str, Any], image_cmd: list[str]) -> list[str]:
    command = service.get("command") or image_cmd
    return [str(c) for c in command]


def _parse_with_cli(args: list[str]) -> None:
    """Parse ``l0sweep ARGS`` with the real CLI without running the command."""
    group = typer.main.get_command(app)
    name, *rest = args
    command = group.commands[name]  # type: ignore[attr-defined]
    command.make_context(name, list(rest))


def _dockerfile_cmd(path: Path) -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, path
    return list(yaml.safe_load(match.group(1)))


def test_container_commands_parse_with_the_cli(compose: dict[str, Any]) -> None:
    api_cmd = _dockerfile_cmd(DOCKER / "api.Dockerfile")
    worker_cmd = _dockerfile_cmd(DOCKER / "worker.Dockerfile")
    _parse_with_cli(api_cmd)
    _parse_with_cli(worker_cmd)
    _parse_with_cli(_cli_args(compose["services"]["api"], api_cmd))
    _parse_with_cli(_cli_args(compose["services"]["worker"], worker_cmd))


def test_images_share_python_and_install_the_pinned_torch() -> None:
    # Ray refuses to mix Python versions between the driver (api) and the workers.
    bases = {re.search(r"^FROM (\S+)", p.read_text(), re.MULTILINE).group(1) for p in DOCKERFILES}  # type: ignore[union-attr]
    assert len(bases) == 1, bases
    for path in DOCKERFILES:
        text = path.read_text(encoding="utf-8")
        assert "torch==2.14.1" in text
        assert 'ENTRYPOINT ["l0sweep"]' in text
    assert "whl/cu128" in (DOCKER / "worker.Dockerfile").read_text()
    assert "whl/cpu" in (DOCKER / "api.Dockerfile").read_text()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    exe = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(exe), "--config", str(DOCKER / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\n", encoding="utf-8")
    exe = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(exe), "--config", str(DOCKER / ".hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest
