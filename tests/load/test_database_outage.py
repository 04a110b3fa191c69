"""The API while its database is down (issue 9, item 3), on a real ``l0sweep serve``.

A PostgreSQL server of the test's own (``initdb`` + ``pg_ctl`` on a free loopback port; the
machine's shared server is never touched) is stopped while every route is read: each
answers 503 ``{"detail": "database unavailable"}`` with ``Retry-After``, quickly, never a
500; ``/healthz`` says the database is the part that is down. When the server returns the
same API process answers 200 again by itself (pre-ping replaces the dead connections).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.faults.support import PostgresServer
from tests.load.harness import TOKEN, seed, serve

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

OUTAGE_S = 8.0
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The paper's presets are built in, not read from the database: they stay up.
WITHOUT_DATABASE = "/api/v1/presets"


def _routes(client: httpx.Client, sweep_id: int, trial_id: int) -> list[str]:
    """Every GET route of the OpenAPI schema, ids filled in."""
    schema = client.get("/openapi.json").json()
    paths = []
    for path, methods in schema["paths"].items():
        if "get" in methods and path.startswith("/api/v1"):
            paths.append(
                path.replace("{sweep_id}", str(sweep_id))
                .replace("{trial_id}", str(trial_id))
                .replace("{name}", "mlp-l0")
            )
    return [p + ("?sweep_ids=1" if p.endswith("/progress") else "") for p in paths]


def test_every_route_answers_503_during_an_outage_and_200_after(tmp_path: Path) -> None:
    pg = PostgresServer()
    try:
        (sweep_id,) = seed(pg.url, n_sweeps=1, n_trials=5)
        env = {"L0SWEEP_PARETO_FRESH_S": "0"}  # no front served from memory in this test
        with (
            serve(pg.url, tmp_path / "data", env=env) as served,
            httpx.Client(base_url=served.url, timeout=30, trust_env=False) as client,
        ):
            trial_id = client.get(f"/api/v1/sweeps/{sweep_id}/trials").json()["items"][0]["id"]
            routes = _routes(client, sweep_id, trial_id)
            assert len(routes) >= 10
            before = {p: client.get(p).status_code for p in routes}
            assert set(before.values()) <= {200, 404, 409}, before  # 404/409: no model file

            pg.stop()
            statuses: Counter[int] = Counter()
            slowest = 0.0
            stopped = time.monotonic()
            while time.monotonic() - stopped < OUTAGE_S:
                for path in [*routes, "/api/v1/healthz"]:
                    t0 = time.perf_counter()
                    r = client.get(path)
                    slowest = max(slowest, time.perf_counter() - t0)
                    statuses[r.status_code] += 1
                    if path.startswith(WITHOUT_DATABASE):
                        continue
                    assert r.status_code == 503, (path, r.status_code, r.text[:300])
                    assert r.headers["retry-after"] == "2"
                    assert r.json()["detail"] == "database unavailable"
                    if path == "/api/v1/healthz":
                        assert r.json()["database"] == "unreachable"
                post = client.post(
                    "/api/v1/sweeps",
                    json={"model": {"arch": "lenet5"}, "dataset": "mnist", "lambdas": [0.1]},
                    headers=AUTH,
                )
                assert post.status_code == 503 and post.headers["retry-after"] == "2"
                statuses[post.status_code] += 1
            pg.start()
            back = time.monotonic()

            deadline = back + 30
            while client.get("/api/v1/healthz").status_code != 200:
                assert time.monotonic() < deadline, "the API did not recover"
                time.sleep(0.1)
            recovered_s = time.monotonic() - back
            after = {p: client.get(p).status_code for p in routes}
            assert after == before
            assert served.process.poll() is None  # the same process, no restart
        print(
            f"outage {OUTAGE_S:.0f} s: {sum(statuses.values())} answers {dict(statuses)}, "
            f"slowest {slowest:.2f} s; 200 again {recovered_s:.2f} s after the database returned"
        )
        assert 500 not in statuses and slowest < 3.0
        assert recovered_s < 10.0
    finally:
        pg.close()
