"""Per-app state: settings, a lazily created engine and the accepted tokens."""

from __future__ import annotations

import threading

from sqlalchemy import Engine

from service.db import create_engine_for
from service.settings import Settings, ensure_api_tokens

__all__ = ["AppState"]


class AppState:
    """Everything a request needs; nothing touches disk or network until first use."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self._engine = engine
        self._owns_engine = engine is None
        self._tokens: list[str] | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = create_engine_for(
                        self.settings.resolved_database_url,
                        busy_timeout_ms=self.settings.sqlite_busy_timeout_ms,
                    )
        return self._engine

    @property
    def tokens(self) -> list[str]:
        if self._tokens is None:
            with self._lock:
                if self._tokens is None:
                    self._tokens = ensure_api_tokens(self.settings)
        return self._tokens

    def close(self) -> None:
        if self._engine is not None and self._owns_engine:
            self._engine.dispose()
            self._engine = None
