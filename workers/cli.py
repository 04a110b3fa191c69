"""``l0sweep``: the command line of the service (console script ``workers.cli:app``)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from service.settings import Settings, get_settings
from workers import render
from workers.client import ApiClient, ApiError

app = typer.Typer(
    name="l0sweep",
    help="Sweeps of L0-regularised sparse networks on Ray Tune, with a REST API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
if not console.is_terminal:
    # Logs and pipes: wide enough for the result tables instead of rich's 80 columns.
    console.width = 120

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="L0SWEEP_URL", help="API root (default http://127.0.0.1:8000)."),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="L0SWEEP_TOKEN",
        help="Bearer token for writes (default: the local server's token file).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster head HOST:PORT; default starts a local Ray instance.",
    ),
]
NumCpusOpt = Annotated[
    int | None, typer.Option("--num-cpus", help="CPUs of the local Ray instance (default all).")
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage-path",
        help="Ray Tune checkpoint storage; on a cluster a shared directory or s3:// URI "
        "(default DATA_DIR/ray_results).",
    ),
]
ObjectivesOpt = Annotated[
    str, typer.Option(help="The front's objectives: 2 or 3 of accuracy, sparsity, flops, params.")
]
RetriesOpt = Annotated[
    int, typer.Option("--max-failures", help="Retries of a failing trial (from its checkpoint).")
]


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("workers").setLevel(logging.DEBUG if verbose else logging.INFO)


def _runner_options(
    settings: Settings, storage_path: str | None, max_failures: int, runner_id: str | None = None
) -> Any:
    from workers.embedded import default_storage_path
    from workers.runner import RunnerOptions, default_runner_id

    return RunnerOptions(
        storage_path=storage_path or default_storage_path(settings),
        runner_id=runner_id or default_runner_id(),
        max_failures=max_failures,
    )


@contextmanager
def _api(url: str | None, token: str | None) -> Iterator[ApiClient]:
    """An API client for one command; an API error ends the command with its message."""
    with ApiClient(url, token) as client:
        try:
            yield client
        except ApiError as exc:
            _fail(str(exc))


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


# ---------------------------------------------------------------------- server side


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    ray_address: RayAddressOpt = None,
    num_cpus: NumCpusOpt = None,
    storage_path: StorageOpt = None,
    max_failures: RetriesOpt = 2,
    runner: Annotated[
        bool, typer.Option("--runner/--no-runner", help="Also run sweeps in this process.")
    ] = True,
) -> None:
    """Run the REST API and the runner (embedded default: SQLite + a local Ray instance)."""
    from workers.embedded import EmbeddedService

    _setup_logging()
    settings = get_settings()
    service = EmbeddedService(
        settings,
        host=host,
        port=port,
        ray_address=ray_address,
        num_cpus=num_cpus,
        runner_options=_runner_options(settings, storage_path, max_failures),
        with_runner=runner,
    )
    service.prepare()
    service.start_runner()
    console.print(f"l0sweep API on http://{host}:{port}/api/v1 (data in {settings.data_dir})")
    try:
        # uvicorn in the main thread: it handles Ctrl-C / SIGTERM and shuts down cleanly.
        service.server().run()
    finally:
        service.stop()


@app.command("runner")
def runner_command(
    ray_address: RayAddressOpt = None,
    num_cpus: NumCpusOpt = None,
    storage_path: StorageOpt = None,
    max_failures: RetriesOpt = 2,
    runner_id: Annotated[
        str | None,
        typer.Option(help="Identity recorded on claimed sweeps (default runner@HOSTNAME)."),
    ] = None,
) -> None:
    """Run the runner alone: resume interrupted sweeps, then claim and run pending ones."""
    from service.db import upgrade_database
    from workers.cluster import connect_ray
    from workers.runner import Runner
    from workers.store import SweepStore

    _setup_logging()
    settings = get_settings()
    upgrade_database(settings.resolved_database_url)
    connect_ray(ray_address, num_cpus=num_cpus)
    runner = Runner(
        SweepStore.from_settings(settings),
        _runner_options(settings, storage_path, max_failures, runner_id),
    )

    def _stop(signum: int, _frame: Any) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(f"l0sweep runner {runner.options.runner_id} ({settings.resolved_database_url})")
    runner.serve_forever()


@app.command()
def worker(
    address: Annotated[str, typer.Option("--address", help="Ray head HOST:PORT to join.")],
    num_cpus: Annotated[int | None, typer.Option(help="CPUs to offer (default all).")] = None,
    num_gpus: Annotated[
        int | None, typer.Option(help="GPUs to offer (default: all detected).")
    ] = None,
    node_ip: Annotated[
        str | None, typer.Option(help="This machine's IP as the head should reach it.")
    ] = None,
    block: Annotated[
        bool, typer.Option("--block/--no-block", help="Stay in the foreground (containers).")
    ] = True,
) -> None:
    """Join this machine's GPUs and CPUs to a Ray cluster (runs `ray start --address`)."""
    from workers.cluster import run_worker, worker_command

    cmd = worker_command(
        address, num_cpus=num_cpus, num_gpus=num_gpus, node_ip=node_ip, block=block
    )
    console.print("$ " + " ".join(cmd))
    raise typer.Exit(run_worker(cmd))


# ---------------------------------------------------------------------- client side


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(help="Sweep spec JSON file (DESIGN §5).")],
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until it finishes.")] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Resubmitting with the same key never duplicates.")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Submit a sweep spec to the API; with --wait, show a progress bar and the front."""
    try:
        body = json.loads(spec.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {spec}: {exc}")
    with _api(url, token) as client:
        sweep = client.submit(body, idempotency_key=idempotency_key)
        console.print(f"sweep {sweep['id']} submitted: {sweep['n_trials']} trials")
        if wait:
            final = render.wait_with_progress(client, sweep["id"], console)
            render.print_front(console, client.pareto(final["id"]), final)
            if final["status"] != "completed":
                raise typer.Exit(1)


@app.command()
def status(
    sweep_id: Annotated[int, typer.Argument(help="Sweep id.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """A sweep's status, trial counts and trials."""
    with _api(url, token) as client:
        render.print_status(console, client.sweep(sweep_id), client.trials(sweep_id))


@app.command()
def pareto(
    sweep_id: Annotated[int, typer.Argument(help="Sweep id.")],
    objectives: ObjectivesOpt = "accuracy,sparsity,flops",
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """The sweep's Pareto front as a table."""
    with _api(url, token) as client:
        render.print_front(console, client.pareto(sweep_id, objectives), client.sweep(sweep_id))


@app.command()
def plot(
    sweep_id: Annotated[int, typer.Argument(help="Sweep id.")],
    out: Annotated[Path, typer.Option(help="Where to write the SVG.")] = Path("pareto.svg"),
    objectives: ObjectivesOpt = "accuracy,sparsity,flops",
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Plot test error vs sparsity and vs FLOPs (SVG), the Pareto front in red."""
    from workers.plot import front_svg

    with _api(url, token) as client:
        sweep = client.sweep(sweep_id)
        front = client.pareto(sweep_id, objectives)
        trials = client.trials(sweep_id)
    try:
        svg = front_svg(trials, {t["id"] for t in front["items"]}, title=sweep["name"])
    except ValueError as exc:
        _fail(f"sweep {sweep_id}: {exc}")
    out.write_text(svg, encoding="utf-8")
    console.print(f"wrote {out}")


@app.command()
def cancel(
    sweep_id: Annotated[int, typer.Argument(help="Sweep id.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Cancel a pending or running sweep (its running trials stop within seconds)."""
    with _api(url, token) as client:
        sweep = client.cancel(sweep_id)
        console.print(f"sweep {sweep['id']}: {sweep['status']}")


@app.command("export")
def export_model(
    trial_id: Annotated[int, typer.Argument(help="Trial id (completed).")],
    path: Annotated[Path, typer.Argument(help="Where to write the TorchScript file.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Download a trial's compacted model (TorchScript; `torch.jit.load` it, no l0sweep needed)."""
    with _api(url, token) as client:
        target = client.download_model(trial_id, path)
    console.print(f"wrote {target} ({target.stat().st_size} bytes)")


@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="Epochs per trial.")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the demo's database and checkpoints go.")
    ] = None,
) -> None:
    """A real L0 sweep on MNIST (MLP 300-100, a λ grid) on the embedded service."""
    from workers.demo import run_demo

    _setup_logging()
    logging.getLogger("workers").setLevel(logging.WARNING)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    code = run_demo(console, epochs=epochs or None, data_dir=data_dir)
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover - console-script convenience
    app(sys.argv[1:])
