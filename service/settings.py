"""Settings, read from the environment with the ``L0SWEEP_`` prefix."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "ensure_api_tokens", "get_settings"]


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("l0sweep", appauthor=False))


class Settings(BaseSettings):
    """Runtime configuration of the service, the API and the runner.

    Every field can be set from the environment, e.g. ``L0SWEEP_DATABASE_URL``,
    ``L0SWEEP_API_TOKENS=tok1,tok2``.
    """

    model_config = SettingsConfigDict(env_prefix="L0SWEEP_", extra="ignore")

    environment: Literal["dev", "prod"] = "dev"
    data_dir: Path = Field(default_factory=_default_data_dir)
    # None means: a SQLite file ``l0sweep.db`` in ``data_dir``.
    database_url: str | None = None
    api_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_trials_per_sweep: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    migrate_on_startup: bool = True
    default_page_limit: int = Field(default=50, ge=1)
    max_page_limit: int = Field(default=1000, ge=1)
    # Computed Pareto fronts each API app keeps (its FrontCache), keyed by results_version.
    pareto_cache_size: int = Field(default=256, ge=0)
    # Operations (issue 15): log lines as text or one JSON object per line (API, runner and,
    # from the same variable on each node, the trainables); whether GET /metrics needs a
    # bearer token (None: only when environment is prod); how old the database figures of a
    # scrape may be (they are recomputed at most once per this many seconds).
    log_format: Literal["text", "json"] = "text"
    metrics_require_token: bool | None = None
    metrics_refresh_s: float = Field(default=5.0, ge=0, le=300)
    # Runners (issue 9): how long results queue in a runner while the database is down before
    # it checkpoints and pauses the sweep, and how old a runner's heartbeat may get before
    # another runner takes its sweeps over. A runner that cannot renew its heartbeat for 3/4
    # of that timeout pauses its sweep too (its lease may be gone), whatever the tolerance.
    db_outage_tolerance_s: float = Field(default=600.0, gt=0)
    runner_timeout_s: float = Field(default=60.0, gt=0)
    # How long `serve` and `runner` wait for the database at start-up before giving up.
    db_startup_wait_s: float = Field(default=60.0, ge=0)
    # Serving (issue 10). The API's worker threads and its connection pool: every request
    # thread holds at most one connection, so with pool_size + max_overflow >= api_threads no
    # thread ever waits for one; when the database is slow or gone the wait is bounded by
    # db_pool_timeout_s and answered 503 with Retry-After.
    api_threads: int = Field(default=40, ge=1, le=1024)
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=30, ge=0)
    db_pool_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # A front read from the database is served from memory, without a query, for this long
    # (a new result shows up at most this late); 0 checks the sweep's results_version on
    # every read.
    pareto_fresh_s: float = Field(default=1.0, ge=0, le=60)
    # uvicorn: idle keep-alive, the time a client has to send one request's headers and body,
    # and the most connections served at once (beyond it: 503).
    server_keep_alive_s: float = Field(default=5.0, gt=0)
    server_read_timeout_s: float = Field(default=10.0, gt=0)
    server_max_connections: int = Field(default=512, ge=1)
    # Largest model one trial may build (dense parameters of the architecture on its
    # dataset), so an absurd spec is refused with a 422 instead of failing every trial.
    max_params_per_trial: int = Field(default=100_000_000, ge=1)

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_prod(self) -> Settings:
        # Outside dev there is no generated token and no implicit SQLite file.
        if self.environment == "prod":
            if not self.api_tokens:
                raise ValueError("L0SWEEP_API_TOKENS must be set when L0SWEEP_ENVIRONMENT=prod")
            if self.database_url is None:
                raise ValueError("L0SWEEP_DATABASE_URL must be set when L0SWEEP_ENVIRONMENT=prod")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'l0sweep.db'}"

    @property
    def metrics_token_required(self) -> bool:
        """Whether ``GET /metrics`` asks for a token: as set, else only in prod."""
        if self.metrics_require_token is None:
            return self.environment == "prod"
        return self.metrics_require_token


def ensure_api_tokens(settings: Settings) -> list[str]:
    """Return the configured tokens; in dev with none, a persistent generated one.

    The generated token lives in ``data_dir/api_token`` (mode 0600) so the API, the CLI and
    a restarted server agree on it.
    """
    if settings.api_tokens:
        return list(settings.api_tokens)
    if settings.environment != "dev":  # pragma: no cover - refused by the validator
        raise ValueError("no API tokens configured")
    path = settings.data_dir / "api_token"
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return [token]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return [token]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
