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


def _compose(env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed (scripts/ensure_services.sh installs it)")
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [exe, "-f", str(COMPOSE), *options, "config"],
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
    default = {name for name, s in compose["services"].items() if not s.get("profiles")}
    assert default == {"postgres", "ray-head", "api", "worker"}
    # Optional ones only start with their profile (`--profile monitoring`).
    assert {n: s["profiles"] for n, s in compose["services"].items() if n not in default} == {
        "prometheus": ["monitoring"]
    }


def test_the_monitoring_profile_scrapes_the_apis_metrics_with_a_token() -> None:
    result = _compose(SECRETS, "--profile", "monitoring")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    prometheus = services["prometheus"]
    mounts = {
        str(v).split(":")[1]: Path(str(v).split(":")[0])
        for v in prometheus["volumes"]
        if str(v).startswith("/")
    }
    config_file = _option([str(c) for c in prometheus["command"][0].split()], "--config.file")
    assert mounts[config_file] == DOCKER / "prometheus.yml"
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text(encoding="utf-8"))
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    [target] = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    api_command = [str(c) for c in services["api"]["command"]]
    assert services.get(host) is services["api"] and port == _option(api_command, "--port")
    assert "api" in prometheus["depends_on"]
    # The API wants a token in prod: the entrypoint writes the first API token where the
    # scrape config reads it, from the same variable the API reads its tokens from.
    assert services["api"]["environment"]["L0SWEEP_ENVIRONMENT"] == "prod"
    assert job["authorization"]["type"] == "Bearer"
    token_file = job["authorization"]["credentials_file"]
    script = prometheus["command"][0]
    assert f"> {token_file}" in script and "L0SWEEP_API_TOKENS%%,*" in script
    assert prometheus["environment"]["L0SWEEP_API_TOKENS"] == SECRETS["L0SWEEP_API_TOKENS"]
    assert prometheus["entrypoint"] == ["/bin/sh", "-c"]
    assert not prometheus["image"].endswith(":latest")


def test_compose_reserves_the_gpus_for_workers(compose: dict[str, Any]) -> None:
    devices = compose["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def _option(command: list[str], name: str) -> str:
    """The value of ``--name=value`` or ``--name value`` in a container command."""
    for i, arg in enumerate(command):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return command[i + 1]
    raise AssertionError(f"{name} not in {command}")


def test_compose_api_reaches_the_database_service_it_waits_for(compose: dict[str, Any]) -> None:
    # Cross-references, not literals: the URL must name the postgres service, its user and
    # database and password, and the API must wait for that service's health check.
    from sqlalchemy.engine import make_url

    services = compose["services"]
    url = make_url(services["api"]["environment"]["L0SWEEP_DATABASE_URL"])
    assert url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg"
    db = services[str(url.host)]
    db_env = db["environment"]
    assert (url.username, url.password, url.database) == (
        db_env["POSTGRES_USER"],
        db_env["POSTGRES_PASSWORD"],
        db_env["POSTGRES_DB"],
    )
    assert url.port == 5432  # the server's port inside the compose network
    assert services["api"]["depends_on"][url.host]["condition"] == "service_healthy"
    assert "healthcheck" in db
    assert services["api"]["environment"]["L0SWEEP_ENVIRONMENT"] == "prod"


def test_compose_nodes_join_the_head_on_its_own_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    head = [str(c) for c in services["ray-head"]["command"]]
    assert "--head" in head
    port = _option(head, "--port")
    assert port != "6380"  # any port, but the same everywhere below
    for name, option in (("api", "--ray-address"), ("worker", "--address")):
        host, _, their_port = _option(
            [str(c) for c in services[name]["command"]], option
        ).rpartition(":")
        assert services.get(host) is services["ray-head"], (name, host)
        assert their_port == port, (name, their_port, port)
        assert services[name]["depends_on"][host]["condition"] == "service_healthy"
    assert f"--address=127.0.0.1:{port}" in services["ray-head"]["healthcheck"]["test"]
    # The head does not train: trials go to the GPU workers.
    assert _option(head, "--num-gpus") == "0" and _option(head, "--num-cpus") == "0"


def test_compose_refuses_to_start_without_secrets() -> None:
    result = _compose({})
    assert result.returncode != 0
    assert "L0SWEEP_API_TOKENS" in result.stderr or "RAY_AUTH_TOKEN" in result.stderr


def test_compose_nodes_share_checkpoint_storage(compose: dict[str, Any]) -> None:
    # Ray Tune writes checkpoints from the workers and the driver reads them back: the data
    # directory every node is told to use must be one named (shared) volume on all of them.
    mounts = set()
    for name in ("ray-head", "api", "worker"):
        service = compose["services"][name]
        data_dir = service["environment"]["L0SWEEP_DATA_DIR"]
        volumes = [
            v
            if isinstance(v, dict)
            else {"source": str(v).split(":")[0], "target": str(v).split(":")[1]}
            for v in service["volumes"]
        ]
        sources = {v["source"] for v in volumes if v["target"] == data_dir}
        assert len(sources) == 1, (name, volumes, data_dir)
        mounts |= sources
    assert len(mounts) == 1 and mounts <= set(compose["volumes"]), mounts


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


def test_compose_publishes_the_api_on_loopback_with_read_limits(compose: dict[str, Any]) -> None:
    # Issue 10: uvicorn was published on every interface, with no bound on slow clients.
    api = compose["services"]["api"]
    assert [str(p).split(":")[0] for p in api["ports"]] == ["127.0.0.1"]
    assert api["environment"]["L0SWEEP_SERVER_READ_TIMEOUT_S"] == "10"
    exposed = _compose({**SECRETS, "L0SWEEP_API_BIND": "0.0.0.0"})
    assert "0.0.0.0:8000:8000" in exposed.stdout
