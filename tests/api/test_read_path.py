"""The read path under load (issue 10): sessions scoped to the work, a bounded pool wait,
identical reads coalesced, fresh fronts served from memory."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from api.deps import get_read_session, get_session
from api.main import create_app
from api.state import SingleFlight
from service.settings import Settings
from tests.api.conftest import AUTH
from tests.api.helpers import complete_trials, spec

URL = "/api/v1/sweeps"


def _app(settings: Settings, **update: Any) -> FastAPI:
    return create_app(settings.model_copy(update=update))


def _dependencies(dependant: Any) -> list[Any]:
    calls = []
    for sub in dependant.dependencies:
        calls.append(sub.call)
        calls.extend(_dependencies(sub))
    return calls


def test_no_json_route_holds_a_session_until_the_response_is_sent(app: FastAPI) -> None:
    # A session from a dependency keeps its connection while the response is serialised on
    # another worker thread: with every thread waiting for a connection, reads stalled.
    for route in app.routes:
        dependant = getattr(route, "dependant", None)
        if dependant is None or not getattr(route, "path", "").startswith("/api/v1"):
            continue
        calls = _dependencies(dependant)
        assert get_session not in calls and get_read_session not in calls, route.path


def test_a_burst_of_reads_on_few_threads_and_connections_never_stalls(
    client: TestClient, settings: Settings
) -> None:
    sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
    complete_trials(client.app, sweep_id, [(0.9, 0.5, 1e5), (0.8, 0.7, 5e4)])  # type: ignore[arg-type]
    # 4 worker threads and 2 connections: with sessions held until the response was sent,
    # 2 answers waited for a thread while 4 threads waited for a connection (30 s, then 503).
    app = _app(settings, db_pool_size=2, db_max_overflow=0, db_pool_timeout_s=5.0)
    paths = [f"{URL}?limit={1 + i % 7}" for i in range(40)]
    paths += [f"{URL}/{sweep_id}/trials?offset={i}" for i in range(40)]
    paths += [f"{URL}/{sweep_id}", "/api/v1/healthz"] * 10

    async def burst() -> tuple[list[int], float]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 4
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            t0 = time.perf_counter()
            async with asyncio.timeout(30):
                answers = await asyncio.gather(*(c.get(p) for p in paths))
            return [r.status_code for r in answers], time.perf_counter() - t0

    statuses, seconds = asyncio.run(burst())
    assert statuses == [200] * len(paths)
    assert seconds < 4.0  # far below one pool timeout
    app.state.l0sweep.close()


def test_a_full_pool_answers_503_with_retry_after_quickly(settings: Settings) -> None:
    app = _app(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=0.5)
    with TestClient(app) as client:
        held = app.state.l0sweep.engine.connect()  # the pool's only connection
        try:
            t0 = time.perf_counter()
            r = client.get(URL)
            assert time.perf_counter() - t0 < 3.0
            assert (r.status_code, r.json()) == (503, {"detail": "database unavailable"})
            assert r.headers["Retry-After"] == "2"
            health = client.get("/api/v1/healthz")
            assert (health.status_code, health.json()["database"]) == (503, "busy")
        finally:
            held.close()
        assert client.get(URL).status_code == 200


def _count_queries(app: FastAPI) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(app.state.l0sweep.engine, "before_cursor_execute", before)
    return seen


def test_a_fresh_front_is_served_without_a_query(settings: Settings) -> None:
    app = _app(settings, pareto_fresh_s=60.0)
    with TestClient(app) as client:
        sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
        complete_trials(app, sweep_id, [(0.9, 0.5, 1e5)])
        first = client.get(f"{URL}/{sweep_id}/pareto")
        queries = _count_queries(app)
        again = client.get(f"{URL}/{sweep_id}/pareto")
        assert queries == [] and again.content == first.content
        # Other objectives are another front: read from the database.
        client.get(f"{URL}/{sweep_id}/pareto", params={"objectives": "accuracy,flops"})
        assert queries


def test_a_front_follows_new_results_once_its_freshness_ends(settings: Settings) -> None:
    app = _app(settings, pareto_fresh_s=0.2)
    with TestClient(app) as client:
        sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
        complete_trials(app, sweep_id, [(0.9, 0.5, 1e5)])
        assert len(client.get(f"{URL}/{sweep_id}/pareto").json()["items"]) == 1
        complete_trials(app, sweep_id, [(0.9, 0.5, 1e5), (0.95, 0.3, 2e5)])
        deadline = time.monotonic() + 5
        while len(client.get(f"{URL}/{sweep_id}/pareto").json()["items"]) != 2:
            assert time.monotonic() < deadline, "the new result never showed"
            time.sleep(0.05)
    off = _app(settings, pareto_fresh_s=0.0)
    with TestClient(off) as client:
        sweep_id = client.post(URL, json=spec(), headers=AUTH).json()["id"]
        complete_trials(off, sweep_id, [(0.9, 0.5, 1e5)])
        assert len(client.get(f"{URL}/{sweep_id}/pareto").json()["items"]) == 1
        complete_trials(off, sweep_id, [(0.9, 0.5, 1e5), (0.95, 0.3, 2e5)])
        assert len(client.get(f"{URL}/{sweep_id}/pareto").json()["items"]) == 2


def test_coalesced_reads_answer_like_plain_ones(client: TestClient, app: FastAPI) -> None:
    # A write through the app starts a new generation: a client reads its own writes.
    for n in range(1, 4):
        created = client.post(URL, json=spec(), headers=AUTH).json()
        listed = client.get(URL).json()
        assert listed["total"] == n and listed["items"][0]["id"] == created["id"]
        assert client.get(f"{URL}/{created['id']}").json() == created
    client.post(f"{URL}/{created['id']}/cancel", headers=AUTH)
    assert client.get(f"{URL}/{created['id']}").json()["status"] == "cancelled"


def test_single_flight_shares_one_computation_per_key() -> None:
    calls: list[str] = []

    async def scenario() -> None:
        flight = SingleFlight()
        release = asyncio.Event()

        async def compute(name: str) -> str:
            calls.append(name)
            await release.wait()
            if name == "bad":
                raise LookupError(name)
            return name.upper()

        tasks = [asyncio.create_task(flight.run("a", lambda: compute("a"))) for _ in range(5)]
        tasks.append(asyncio.create_task(flight.run("b", lambda: compute("b"))))
        bad = [asyncio.create_task(flight.run("x", lambda: compute("bad"))) for _ in range(3)]
        await asyncio.sleep(0.01)
        release.set()
        assert await asyncio.gather(*tasks) == ["A"] * 5 + ["B"]
        for task in bad:
            with pytest.raises(LookupError):
                await task
        assert await flight.run("a", lambda: compute("a")) == "A"  # done: computed again

    asyncio.run(scenario())
    assert calls == ["a", "b", "bad", "a"]


def test_healthz_answers_head_and_get(tmp_path: Path, client: TestClient) -> None:
    assert client.head("/api/v1/healthz").status_code == 200
    assert client.get("/api/v1/healthz").json()["database"] == "ok"
