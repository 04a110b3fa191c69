"""Overhead of running a sweep through the service versus a plain Python loop.

The same 8 trials (L0 MLP 300-100 on MNIST, λ grid, ~10 s each) run

1. as a plain loop calling ``l0models.train_model`` one trial after another, and
2. through the service: POST to the real API (uvicorn on loopback), the runner driving Ray
   Tune on a local Ray instance, every epoch and result written to SQLite, every compacted
   model exported and stored, the client polling until the sweep is completed.

Both run one trial at a time on one core (``torch.set_num_threads(1)`` in the loop;
``cpus_per_trial: 1`` and ``max_concurrent_trials: 1`` in the spec), so the difference is
the service's overhead: Ray actor start-up, shipping the dataset through the object store,
per-epoch checkpoints and results, database writes, model export. (A sweep would normally
run one trial per core at once; that is parallelism, not overhead, and is left out here.)
One run; prints the ratio (target ≤ 1.25).

Usage: ``.venv/bin/python benchmarks/sweep_overhead.py [--epochs N]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from targets import Targets, add_check_flag

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.main import create_app  # noqa: E402
from l0models import MLPConfig, TrainSettings, load_dataset, train_model  # noqa: E402
from service.settings import Settings  # noqa: E402
from workers.cli.client import ApiClient  # noqa: E402
from workers.cli.embedded import EmbeddedService  # noqa: E402
from workers.tune.runner import RunnerOptions  # noqa: E402

LAMBDAS = [0.01, 0.03, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0]
TOKEN = "bench-token"


def plain_loop(epochs: int) -> tuple[float, list[float]]:
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_dataset("mnist")
    settings = TrainSettings(epochs=epochs, batch_size=100, lr=1e-3, weight_decay=5e-4)
    per_trial = []
    for lam in LAMBDAS:
        t0 = time.perf_counter()
        train_model(
            MLPConfig(hidden=(300, 100)), lam=lam, beta=2 / 3, seed=0, settings=settings, data=data
        )
        per_trial.append(time.perf_counter() - t0)
    return time.perf_counter() - start, per_trial


def through_service(epochs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="l0sweep-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            database_url=f"sqlite:///{tmp}/l0sweep.db",
            api_tokens=[TOKEN],
        )
        t_boot = time.perf_counter()
        service = EmbeddedService(
            settings,
            app=create_app(settings),
            num_cpus=os.cpu_count(),
            runner_options=RunnerOptions(storage_path=f"{tmp}/ray", poll_interval_s=0.2),
        )
        with service, ApiClient(service.url, TOKEN) as client:
            boot = time.perf_counter() - t_boot
            spec = {
                "name": "bench-sweep-overhead",
                "model": {"arch": "mlp", "hidden": [300, 100]},
                "dataset": "mnist",
                "lambdas": LAMBDAS,
                "training": {"epochs": epochs, "batch_size": 100, "lr": 1e-3, "weight_decay": 5e-4},
                "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
                "max_concurrent_trials": 1,
                "fuse": 1,
            }
            t0 = time.perf_counter()
            sweep = client.submit(spec)
            final = client.wait(sweep["id"], poll_s=0.2, timeout_s=3600)
            elapsed = time.perf_counter() - t0
            assert final["status"] == "completed", final
            trials = client.trials(sweep["id"])
            assert len(trials) == len(LAMBDAS)
            assert all(t["status"] == "completed" and t["metrics"] for t in trials)
        return elapsed, boot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per trial (~1.7 s each)")
    add_check_flag(parser)
    args = parser.parse_args()
    targets = Targets.from_args(args)
    print(
        f"8 trials: L0 MLP 300-100 on MNIST, {args.epochs} epochs each, one at a time on one "
        f"core of {os.cpu_count()}, torch {torch.__version__}",
        flush=True,
    )
    loop_s, per_trial = plain_loop(args.epochs)
    print(
        f"plain loop:      {loop_s:7.1f} s  "
        f"(per trial {min(per_trial):.1f}–{max(per_trial):.1f} s)",
        flush=True,
    )
    service_s, boot_s = through_service(args.epochs)
    print(
        f"through service: {service_s:7.1f} s  submit → completed "
        f"(+ {boot_s:.1f} s to start SQLite, Ray and the API once)"
    )
    ratio = service_s / loop_s
    verdict = targets.at_most("service / loop", ratio, 1.25)
    print(f"ratio service / loop: {ratio:.3f}  (target ≤ 1.25: {verdict})")
    print(f"ratio incl. start-up: {(service_s + boot_s) / loop_s:.3f}")
    targets.finish()


if __name__ == "__main__":
    main()
