"""The embedded service: database migrations, Ray, the REST API and the runner in one process.

``l0sweep serve`` and ``l0sweep demo`` run this; so do the end-to-end tests. The API is
served by uvicorn on a thread (it only talks to the database); the runner, the only writer
of results, drives Ray Tune on another thread.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from service.db import upgrade_database
from service.settings import Settings
from workers.cli.serving import api_config
from workers.tune.cluster import connect_ray
from workers.tune.runner import Runner, RunnerOptions
from workers.tune.store import SweepStore

__all__ = ["API_APP_FACTORY", "EmbeddedService", "default_storage_path"]

log = logging.getLogger(__name__)

# The API is loaded by import string, as `uvicorn` would: workers never imports api (§2).
API_APP_FACTORY = "api.main:create_served_app"


def default_storage_path(settings: Settings) -> str:
    """Ray Tune checkpoints of the embedded default: next to the SQLite file."""
    return str(Path(settings.data_dir) / "ray_results")


class EmbeddedService:
    """Start with :meth:`start` (or as a context manager), stop with :meth:`stop`.

    Args:
        settings: Service settings (database, tokens, data directory).
        host: Interface of the API; the default keeps everything on loopback.
        port: API port; 0 picks a free one (see :attr:`url`).
        app: An ASGI app to serve; default: :data:`API_APP_FACTORY` built from the
            environment's settings.
        ray_address: A cluster to use; None starts a local Ray instance.
        num_cpus: CPUs of the local Ray instance (default: all).
        runner_options: How the runner runs sweeps (default storage under ``data_dir``).
        with_runner: False serves the API only.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        app: Any = None,
        ray_address: str | None = None,
        num_cpus: int | None = None,
        runner_options: RunnerOptions | None = None,
        with_runner: bool = True,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.app = app
        self.ray_address = ray_address
        self.num_cpus = num_cpus
        self.with_runner = with_runner
        self.runner_options = runner_options or RunnerOptions(
            storage_path=default_storage_path(settings)
        )
        self.runner: Runner | None = None
        self._server: uvicorn.Server | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def prepare(self) -> None:
        """Migrate the database and connect to Ray (no threads started)."""
        upgrade_database(self.settings.resolved_database_url)
        if self.with_runner:
            connect_ray(self.ray_address, num_cpus=self.num_cpus)
            self.runner = Runner(SweepStore.from_settings(self.settings), self.runner_options)

    def server(self) -> uvicorn.Server:
        if self._server is None:
            app = self.app if self.app is not None else API_APP_FACTORY
            config = api_config(
                app, self.settings, host=self.host, port=self.port, factory=self.app is None
            )
            self._server = uvicorn.Server(config)
        return self._server

    def start(self, *, timeout_s: float = 60.0) -> EmbeddedService:
        """Everything in background threads; returns once the API answers."""
        self.prepare()
        self.start_runner()
        server = self.server()
        thread = threading.Thread(target=server.run, name="l0sweep-api", daemon=True)
        thread.start()
        self._threads.append(thread)
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    def start_runner(self) -> None:
        if self.runner is None:
            return
        thread = threading.Thread(
            target=self.runner.serve_forever, name="l0sweep-runner", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the runner (a running sweep stays resumable) and the API."""
        if self.runner is not None:
            self.runner.stop()
        if self._server is not None:
            self._server.should_exit = True
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def __enter__(self) -> EmbeddedService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running API."""
        server = self._server
        if server is None or not server.started:
            raise RuntimeError("the API server is not running")
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"
