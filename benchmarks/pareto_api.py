"""Benchmark: GET /api/v1/sweeps/{id}/pareto on a 10,000-trial sweep through real uvicorn.

1. A SQLite database (WAL) with one sweep of 10,000 completed trials, recorded through the
   repository (measures drawn from a noisy accuracy-sparsity-FLOPs trade-off).
2. `uvicorn api.main:app` in a subprocess on loopback, configured from L0SWEEP_* env vars;
   after 20 warm-up requests, 200 sequential GETs of the 3-objective front (keep-alive
   client): p50 / p99 latency. Target p99 <= 50 ms. Run twice: with the per-process front
   cache off (L0SWEEP_PARETO_CACHE_SIZE=0: every request reads the 10k rows and computes the
   front) and on (the default: unchanged sweeps are served from the cache).
3. The front computation alone on the same 10,000 points: service.pareto.nondominated_mask
   vs Optuna's non-dominated sort (optuna.study._multi_objective._is_pareto_front, what
   Study.best_trials uses, and _fast_non_domination_rank, NSGA-II's sort): median of 50 runs.
4. The read of the front's rows alone (id + accuracy, sparsity, flops, flops_dense of the 10k
   completed trials into a float array), alternating in one process on the same database:
   the repository's plain SQLAlchemy read (a Core select through the session) vs the raw
   DBAPI cursor it used before, and vs the same select on ORM attributes: median of 60 runs.

Run:  .venv/bin/python benchmarks/pareto_api.py [--trials 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from targets import Targets, add_check_flag  # noqa: E402

from service import repository as repo  # noqa: E402
from service.db import create_engine_for, session_scope, upgrade_database  # noqa: E402
from service.models import Trial  # noqa: E402
from service.pareto import nondominated_mask, to_minimisation  # noqa: E402
from service.repository.fronts import _read_completed  # noqa: E402
from service.spec import SweepSpec  # noqa: E402
from service.vocabulary import TrialStatus  # noqa: E402

DIRECTIONS = ["maximize", "maximize", "minimize"]


def populate(url: str, n_trials: int, seed: int = 0) -> int:
    """One sweep with ``n_trials`` completed trials; returns its id."""
    n_lam = n_trials // 100
    spec = SweepSpec.model_validate(
        {
            "name": "bench",
            "model": {"arch": "mlp", "hidden": [300, 100]},
            "dataset": "mnist",
            "lambdas": {"logspace": [-3, 1, n_lam]},
            "betas": [0.5 + 0.03 * i for i in range(10)],
            "seeds": list(range(10)),
        }
    )
    assert spec.n_trials == n_trials
    rng = np.random.default_rng(seed)
    dense_params, dense_flops = 266_610, 532_810
    engine = create_engine_for(url)
    with session_scope(engine) as s:
        sweep_id = repo.create_sweep(s, spec).id
    with session_scope(engine) as s:
        trials = repo.list_trials(s, sweep_id).items
        for t in trials:
            sparsity = float(np.clip(0.2 + 0.75 * np.tanh(t.lam) + rng.normal(0, 0.05), 0, 0.99))
            accuracy = float(np.clip(0.985 - 0.08 * sparsity**6 + rng.normal(0, 0.004), 0, 1))
            params = round((1 - sparsity) * dense_params)
            flops = round(2 * params * rng.uniform(0.9, 1.1))
            repo.record_trial_result(
                s,
                t.id,
                {
                    "accuracy": accuracy,
                    "sparsity": sparsity,
                    "params": params,
                    "params_dense": dense_params,
                    "flops": min(flops, dense_flops),
                    "flops_dense": dense_flops,
                    "expected_flops": float(flops),
                    "expected_l0": float(params),
                    "architecture": [784, 300, 100],
                },
            )
    engine.dispose()
    return sweep_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    url: str, data_dir: str, extra_env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "L0SWEEP_DATABASE_URL": url,
        "L0SWEEP_API_TOKENS": "bench",
        "L0SWEEP_DATA_DIR": data_dir,
        **extra_env,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/api/v1/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("uvicorn did not start")


def measure(
    url: str, data_dir: str, sweep_id: int, n_requests: int, cache_size: str
) -> tuple[float, float, float, int, float]:
    """p50, p99, max latency (ms), front size and response KiB of GET pareto."""
    proc, base = serve(url, data_dir, {"L0SWEEP_PARETO_CACHE_SIZE": cache_size})
    try:
        path = f"{base}/api/v1/sweeps/{sweep_id}/pareto"
        with httpx.Client(timeout=10) as client:
            for _ in range(20):
                r = client.get(path)
                r.raise_for_status()
            latencies = []
            for _ in range(n_requests):
                t0 = time.perf_counter()
                r = client.get(path)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return (
        percentile(latencies, 50),
        percentile(latencies, 99),
        max(latencies),
        len(r.json()["items"]),
        len(r.content) / 1024,
    )


FRONT_COLUMNS = ["accuracy", "sparsity", "flops", "flops_dense"]


def read_raw_cursor(session: Any, sweep_id: int, names: list[str]) -> np.ndarray:
    """The rows through the session connection's DBAPI cursor (the read path before)."""
    stmt = select(Trial.id, *(getattr(Trial, n) for n in names)).where(
        Trial.sweep_id == sweep_id, Trial.status == TrialStatus.COMPLETED.value
    )
    connection = session.connection()
    compiled = stmt.compile(dialect=connection.dialect)
    params = compiled.construct_params()
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if connection.dialect.positional
        else params
    )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, args)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return np.array(rows, dtype=float).reshape(len(rows), len(names) + 1)


def read_orm_attributes(session: Any, sweep_id: int, names: list[str]) -> np.ndarray:
    """The same select on ORM attributes (``Trial.accuracy``) instead of table columns."""
    stmt = select(Trial.id, *(getattr(Trial, n) for n in names)).where(
        Trial.sweep_id == sweep_id, Trial.status == TrialStatus.COMPLETED
    )
    rows = session.execute(stmt).all()
    values = (math.nan if v is None else v for v in itertools.chain.from_iterable(rows))
    return np.fromiter(values, dtype=float, count=len(rows) * (len(names) + 1)).reshape(
        len(rows), len(names) + 1
    )


def compare_read_paths(url: str, sweep_id: int, repeats: int = 60) -> dict[str, float]:
    """Median ms of each read of the front's rows, alternating, on one engine."""
    readers = {
        "plain SQLAlchemy (Core select, the repository's)": _read_completed,
        "raw DBAPI cursor (before)": read_raw_cursor,
        "SQLAlchemy on ORM attributes": read_orm_attributes,
    }
    engine = create_engine_for(url)
    times: dict[str, list[float]] = {name: [] for name in readers}
    reference = None
    try:
        for _ in range(repeats):
            for name, read in readers.items():
                with session_scope(engine, readonly=True) as s:
                    t0 = time.perf_counter()
                    data = read(s, sweep_id, FRONT_COLUMNS)
                    times[name].append((time.perf_counter() - t0) * 1000)
                if reference is None:
                    reference = data
                assert np.array_equal(data, reference, equal_nan=True)
    finally:
        engine.dispose()
    return {name: statistics.median(ts) for name, ts in times.items()}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def time_median(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    add_check_flag(parser)
    args = parser.parse_args()
    targets = Targets.from_args(args)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade_database(url)
        t0 = time.perf_counter()
        sweep_id = populate(url, args.trials)
        print(f"stored {args.trials} completed trials in {time.perf_counter() - t0:.1f} s")

        for label, cache_size in (("uncached", "0"), ("cached", "256")):
            p50, p99, worst, n_front, kib = measure(url, tmp, sweep_id, args.requests, cache_size)
            print(
                f"GET pareto {label:8s} (3 objectives, {n_front} of {args.trials} trials on the "
                f"front, {kib:.0f} KiB): p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms "
                f"over {args.requests} requests -> target p99 <= 50 ms: "
                f"{targets.at_most(f'p99 {label}', p99, 50)}"
            )

        for name, ms in compare_read_paths(url, sweep_id).items():
            print(f"read of the {args.trials} rows, {name}: median {ms:.2f} ms")

        # Front computation alone, on exactly the points the endpoint used.
        engine = create_engine_for(url)
        with session_scope(engine, readonly=True) as s:
            trials = repo.list_trials(s, sweep_id).items
            points = np.array([[t.accuracy, t.sparsity, t.flops] for t in trials], dtype=float)
        engine.dispose()

    from optuna.study._multi_objective import _fast_non_domination_rank, _is_pareto_front

    loss = to_minimisation(points, DIRECTIONS)  # what Optuna stores: minimised values
    ours = nondominated_mask(points, DIRECTIONS)
    assert np.array_equal(ours, _is_pareto_front(loss, assume_unique_lexsorted=False))
    assert np.array_equal(ours, _fast_non_domination_rank(loss, n_below=1) == 0)
    t_ours = time_median(lambda: nondominated_mask(points, DIRECTIONS), 50)
    t_optuna = time_median(lambda: _is_pareto_front(loss, assume_unique_lexsorted=False), 50)
    t_rank = time_median(lambda: _fast_non_domination_rank(loss, n_below=1), 10)
    print(
        f"front alone on {len(points)} points ({int(ours.sum())} on the front): "
        f"l0sweep {t_ours * 1000:.2f} ms, Optuna _is_pareto_front {t_optuna * 1000:.2f} ms "
        f"(ours/optuna = {t_ours / t_optuna:.2f}), Optuna _fast_non_domination_rank "
        f"{t_rank * 1000:.2f} ms (ours/optuna = {t_ours / t_rank:.2f})"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} (other jobs)"
    )
    targets.finish()


if __name__ == "__main__":
    main()
