"""Benchmark: GET /metrics on a 10,000-trial database through real uvicorn.

1. A SQLite database (WAL) with one finished sweep of 10,000 completed trials (finished an
   hour ago), 10 recorded epochs each (100,000 trial_epochs rows, with durations), and a
   runner heartbeat.
2. `uvicorn api.main:app` in a subprocess on loopback, configured from L0SWEEP_* env vars;
   20 warm-up scrapes, then --requests sequential scrapes (keep-alive client): p50 / p99 /
   max. Target: p99 <= 20 ms with the default settings. Three runs:
   - default (L0SWEEP_METRICS_REFRESH_S=5: the database figures are re-read at most every
     5 s; a scrape in between renders the last snapshot);
   - refresh on every scrape (L0SWEEP_METRICS_REFRESH_S=0), the sweep finished: a scrape
     reads the sweeps and the epoch rows above the watermark, not the trials;
   - refresh on every scrape with the sweep still running: its 10,000 trials are counted
     from the (sweep_id, status) index on every scrape (the worst case).
3. The first scrape of a fresh process (it aggregates the 100,000 epoch rows once) is
   reported separately.

Run:  .venv/bin/python benchmarks/metrics_scrape.py [--trials 10000] [--requests 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pareto_api import percentile, populate, serve  # noqa: E402
from targets import Targets, add_check_flag  # noqa: E402

from service import repository as repo  # noqa: E402
from service.db import create_engine_for, session_scope, upgrade_database  # noqa: E402
from service.models import Sweep, Trial, TrialEpoch  # noqa: E402

EPOCHS = 10


def add_history(url: str, sweep_id: int, epochs: int) -> int:
    """``epochs`` epoch rows per trial, stamped an hour ago; a finished sweep; a runner."""
    engine = create_engine_for(url)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with session_scope(engine) as s:
        ids = [t.id for t in repo.list_trials(s, sweep_id).items]
        rows = [
            {
                "trial_id": trial_id,
                "epoch": e,
                "loss": 0.1,
                "accuracy": 0.98,
                "expected_l0": 1e5,
                "expected_flops": 2e5,
                "seconds": 0.5 + (trial_id * 7 + e) % 50,
                "recorded_at": long_ago,
            }
            for trial_id in ids
            for e in range(1, epochs + 1)
        ]
        s.execute(insert(TrialEpoch), rows)
        s.execute(update(Trial).where(Trial.sweep_id == sweep_id).values(epochs_done=epochs))
        repo.finish_sweep(s, sweep_id)
        s.execute(update(Sweep).where(Sweep.id == sweep_id).values(finished_at=long_ago))
        repo.record_heartbeat(s, "runner@bench", host="bench", pid=1)
    engine.dispose()
    return len(rows)


def set_status(url: str, sweep_id: int, status: str) -> None:
    engine = create_engine_for(url)
    with session_scope(engine) as s:
        s.execute(update(Sweep).where(Sweep.id == sweep_id).values(status=status))
    engine.dispose()


def scrape_latencies(
    url: str, data_dir: str, n_requests: int, refresh_s: str
) -> tuple[float, list[float], dict[str, float]]:
    """(first scrape ms, later scrape latencies ms, a few figures of the last scrape)."""
    proc, base = serve(url, data_dir, {"L0SWEEP_METRICS_REFRESH_S": refresh_s})
    try:
        with httpx.Client(timeout=30) as client:
            t0 = time.perf_counter()
            client.get(f"{base}/metrics").raise_for_status()
            first = (time.perf_counter() - t0) * 1000
            for _ in range(20):
                client.get(f"{base}/metrics").raise_for_status()
            latencies = []
            for _ in range(n_requests):
                t0 = time.perf_counter()
                r = client.get(f"{base}/metrics")
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name in ("l0sweep_trial_epochs_total", "l0sweep_trial_epoch_seconds_count"):
                figures[sample.name] = sample.value
            if sample.name == "l0sweep_trials" and sample.labels["status"] == "completed":
                figures["l0sweep_trials{completed}"] = sample.value
    return first, latencies, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500)
    add_check_flag(parser)
    args = parser.parse_args()
    targets = Targets.from_args(args)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade_database(url)
        t0 = time.perf_counter()
        sweep_id = populate(url, args.trials)
        n_epochs = add_history(url, sweep_id, EPOCHS)
        print(
            f"database: {args.trials} trials, {n_epochs} epoch rows "
            f"({time.perf_counter() - t0:.0f} s to build)"
        )
        runs = [
            ("default (refresh 5 s), sweep finished", "5", "completed", True),
            ("refresh every scrape, sweep finished", "0", "completed", False),
            ("refresh every scrape, sweep running", "0", "running", False),
        ]
        print(f"{'run':<40} {'first ms':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
        for name, refresh_s, status, is_target in runs:
            set_status(url, sweep_id, status)
            first, lat, figures = scrape_latencies(url, tmp, args.requests, refresh_s)
            assert figures["l0sweep_trial_epochs_total"] == n_epochs, figures
            assert figures["l0sweep_trials{completed}"] == args.trials, figures
            p99 = percentile(lat, 99)
            verdict = targets.at_most(f"p99 {name}", p99, 20.0) if is_target else "(info)"
            print(
                f"{name:<40} {first:>9.1f} {percentile(lat, 50):>7.2f} {p99:>7.2f} "
                f"{max(lat):>7.2f}  {verdict}" + ("  target p99 <= 20 ms" if is_target else "")
            )
    targets.finish()


if __name__ == "__main__":
    main()
