"""``l0sweep demo``: a real L0 sweep on MNIST on the embedded service, start to finish.

Starts SQLite + a local Ray instance + the REST API (loopback) + the runner in this process,
submits an MLP 300-100 sweep over a λ grid through the API, shows progress, and prints the
Pareto front the API serves.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from service.settings import Settings, get_settings
from service.vocabulary import SweepStatus
from workers.cli import render
from workers.cli.client import ApiClient

__all__ = ["DEMO_EPOCHS", "demo_spec", "run_demo"]

# On 2 CPU cores (about 2.3 s per MLP epoch per core) this separates the λ values in a few
# minutes: after 12–15 epochs λ = 0.3 keeps about half the weights at ~97.5 % accuracy,
# λ = 3 about 10 % at ~83 %, and λ ≥ 10 collapses, so the grid stops at 3.
DEMO_EPOCHS = 20
DEMO_LAMBDAS = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]


def demo_spec(epochs: int = DEMO_EPOCHS) -> dict[str, Any]:
    """The demo sweep: the paper's MLP 784-300-100 on MNIST, λ grid × one β × one seed."""
    return {
        "name": "demo-mnist-mlp-300-100",
        "model": {"arch": "mlp", "hidden": [300, 100]},
        "dataset": "mnist",
        "lambdas": DEMO_LAMBDAS,
        "betas": [2 / 3],
        "seeds": [0],
        "training": {"epochs": epochs, "batch_size": 100, "lr": 1e-3, "weight_decay": 5e-4},
        "search": {"strategy": "grid"},
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        "fuse": 1,
    }


def _demo_settings(data_dir: Path | None) -> Settings:
    base = data_dir or Path(get_settings().data_dir) / "demo" / time.strftime("%Y%m%d-%H%M%S")
    base.mkdir(parents=True, exist_ok=True)
    # The API is built from the environment (workers does not import api): point it here.
    os.environ["L0SWEEP_DATA_DIR"] = str(base)
    os.environ["L0SWEEP_DATABASE_URL"] = f"sqlite:///{base / 'l0sweep.db'}"
    get_settings.cache_clear()
    return get_settings()


def run_demo(console: Console, *, epochs: int | None = None, data_dir: Path | None = None) -> int:
    """Run the demo; returns the process exit status."""
    from workers.cli.embedded import EmbeddedService, default_storage_path
    from workers.cli.plot import front_svg
    from workers.tune import spec_adapter
    from workers.tune.runner import RunnerOptions

    started = time.monotonic()
    # Keep using the usual dataset cache, not one per demo directory.
    data_root = spec_adapter.dataset_cache_dir()
    settings = _demo_settings(data_dir)
    options = RunnerOptions(storage_path=default_storage_path(settings), data_root=data_root)
    console.print(f"[bold]l0sweep demo[/bold] · data in {settings.data_dir}")
    console.print("starting the embedded service: SQLite, a local Ray instance, the API …")
    with EmbeddedService(settings, runner_options=options) as service:
        console.print(f"API on {service.url}/api/v1")
        console.print(f"dashboard on {service.url}/ (watch the sweep live there)")
        with ApiClient(service.url) as client:
            spec = demo_spec(epochs or DEMO_EPOCHS)
            sweep = client.submit(spec)
            console.print(
                f"submitted sweep {sweep['id']}: MLP 300-100 on MNIST, "
                f"λ ∈ {spec['lambdas']}, {spec['training']['epochs']} epochs each"
            )
            final = render.wait_with_progress(client, sweep["id"], console)
            front = client.pareto(sweep["id"], "accuracy,sparsity,flops")
            render.print_front(console, front, final)
            trials = client.trials(sweep["id"])
            render.print_status(console, final, trials)
            if any(t.get("metrics") for t in trials):
                plot_path = settings.data_dir / "pareto.svg"
                plot_path.write_text(
                    front_svg(trials, {t["id"] for t in front["items"]}, title=final["name"]),
                    encoding="utf-8",
                )
                console.print(f"plot of the trade-off: {plot_path}")
    minutes, seconds = divmod(time.monotonic() - started, 60)
    console.print(f"wall time {int(minutes)} min {seconds:.0f} s")
    console.print(
        f"browse it again: L0SWEEP_DATA_DIR={settings.data_dir} l0sweep serve "
        "(then l0sweep pareto ID / l0sweep export TRIAL_ID model.pt)"
    )
    return 0 if final["status"] == SweepStatus.COMPLETED else 1
