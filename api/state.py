"""Per-app state: settings, a lazily created engine, the accepted tokens, the front caches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from cachetools import TTLCache
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.db import create_engine_for, session_scope
from service.repository import FrontCache
from service.settings import Settings, ensure_api_tokens

__all__ = ["AppState", "FreshCache", "SingleFlight"]

V = TypeVar("V")


class FreshCache(Generic[V]):
    """Answers kept for ``fresh_s`` seconds after they were read, served without a query.

    Thread-safe. ``fresh_s`` or ``maxsize`` 0 keeps nothing.
    """

    def __init__(self, maxsize: int, fresh_s: float) -> None:
        self._answers: TTLCache[Hashable, V] | None = (
            TTLCache(maxsize, ttl=fresh_s) if maxsize > 0 and fresh_s > 0 else None
        )
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        if self._answers is None:
            return None
        with self._lock:
            return self._answers.get(key)

    def put(self, key: Hashable, value: V) -> None:
        if self._answers is None:
            return
        with self._lock:
            self._answers[key] = value


def _render_json(build: Callable[[], BaseModel]) -> bytes:
    return build().model_dump_json(by_alias=True).encode()


class SingleFlight:
    """Concurrent requests for the same key share one computation.

    A burst of reads of one front otherwise computed it once per request that arrived
    before the first answer was cached. Used from the event loop only.
    """

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        loop = asyncio.get_running_loop()
        slot = (id(loop), key)  # a future belongs to its event loop
        running = self._running.get(slot)
        if running is not None:
            result: V = await asyncio.shield(running)
            return result
        future: asyncio.Future[Any] = loop.create_future()
        self._running[slot] = future
        try:
            result = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without followers
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._running[slot]


class AppState:
    """Everything a request needs; nothing touches disk or network until first use."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self._engine = engine
        self._owns_engine = engine is None
        self._tokens: list[str] | None = None
        self._lock = threading.Lock()
        # This app's computed Pareto fronts; another app in the process has its own.
        self.front_cache = FrontCache(settings.pareto_cache_size)
        # The rendered fronts (JSON bytes) of the last pareto_fresh_s seconds.
        self.fresh_fronts: FreshCache[bytes] = FreshCache(
            settings.pareto_cache_size, settings.pareto_fresh_s
        )
        # JSON answers of read routes being built, shared by identical requests.
        self._reads = SingleFlight()
        self._writes = 0  # writes committed through this app (see read_json)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    s = self.settings
                    self._engine = create_engine_for(
                        s.resolved_database_url,
                        busy_timeout_ms=s.sqlite_busy_timeout_ms,
                        pool_size=s.db_pool_size,
                        max_overflow=s.db_max_overflow,
                        pool_timeout_s=s.db_pool_timeout_s,
                    )
        return self._engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work.

        Open it inside the route, around the queries and the building of the answer: its
        connection goes back to the pool in the same thread, before the response is
        serialised. (A session held by a dependency until the response's teardown kept its
        connection while the request waited for a thread; with every thread waiting for a
        connection, reads stalled for the whole pool timeout: issue 10.)
        """
        with session_scope(self.engine, readonly=True) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write unit of work, committed when the block ends (see :meth:`read`)."""
        with session_scope(self.engine) as session:
            yield session
        with self._lock:
            self._writes += 1

    async def read_json(self, key: Hashable, build: Callable[[], BaseModel]) -> bytes:
        """The JSON of ``build()`` (run on a worker thread, where it opens :meth:`read`).

        Identical reads (same ``key``) that arrive while one is being built wait for it and
        get the same bytes: a burst of 200 equal GETs costs one query, not 200. A write
        through this app starts a new generation, so a client never gets an answer built
        before its own write committed.
        """
        return await self._reads.run(
            (key, self._writes), lambda: run_in_threadpool(_render_json, build)
        )

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
