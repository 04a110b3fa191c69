"""Bursts of concurrent reads against a real ``l0sweep serve`` (issue 10).

Before the fix, 200 concurrent GETs of ``/pareto`` and ``/sweeps`` could stall the API for
30-60 s and end in 503s: each request's database session lived until the response was sent,
holding its connection while the request waited for a worker thread, and every worker
thread waited for a connection. Target: 0 × 5xx and p99 under 2 s, 4 bursts of 200 on the
2-core test machine, each database.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.load.harness import burst, seed, serve

pytestmark = pytest.mark.slow

BURSTS = 4
CLIENTS = 200
P99_S = 2.0


def test_concurrent_reads_never_stall(db_url: str, tmp_path: Path) -> None:
    ids = seed(db_url, n_sweeps=10, n_trials=100)
    # Every burst: half fronts (each sweep's, 100 trials on the front), half sweep lists.
    paths = [
        f"/api/v1/sweeps/{ids[i % len(ids)]}/pareto" if i % 2 == 0 else "/api/v1/sweeps?limit=20"
        for i in range(CLIENTS)
    ]
    with serve(db_url, tmp_path / "data") as served:
        results = [burst(served.url, paths, timeout_s=60) for _ in range(BURSTS)]
        log = served.log.read_text()
    latencies = sorted(t for b in results for t in b.latencies)
    p99 = latencies[int(0.99 * len(latencies))]
    errors = sum(b.server_errors for b in results)
    p50 = latencies[len(latencies) // 2]
    print(
        f"{len(latencies)} reads: 5xx or no answer {errors}, p50 {p50:.3f} s,"
        f" p99 {p99:.3f} s, max {latencies[-1]:.3f} s"
    )
    assert errors == 0, log[-3000:]
    assert all(s == 200 for b in results for s in b.statuses)
    assert p99 < P99_S
    assert "QueuePool limit" not in log
