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

import httpx
import typer
from rich.console import Console

from service.logs import configure_logging
from service.settings import Settings, get_settings
from service.vocabulary import ModelFormat, SweepStatus
from workers.cli import render
from workers.cli.client import ApiClient, ApiError

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
    # Human-readable lines, or one JSON object per line with L0SWEEP_LOG_FORMAT=json.
    configure_logging(level=logging.WARNING)
    logging.getLogger("workers").setLevel(logging.DEBUG if verbose else logging.INFO)


def _runner_options(
    settings: Settings, storage_path: str | None, max_failures: int, runner_id: str | None = None
) -> Any:
    from workers.cli.embedded import default_storage_path
    from workers.tune.runner import RunnerOptions, default_runner_id

    return RunnerOptions(
        storage_path=storage_path or default_storage_path(settings),
        runner_id=runner_id or default_runner_id(),
        max_failures=max_failures,
    )


@contextmanager
def _api(url: str | None, token: str | None) -> Iterator[ApiClient]:
    """An API client for one command (``L0SWEEP_CLIENT_TIMEOUT_S`` per request, default 30).
    An API error, an unreachable server or one that does not answer in time ends the command
    with one line naming the URL and the cause."""
    timeout = float(os.environ.get("L0SWEEP_CLIENT_TIMEOUT_S", "30"))
    with ApiClient(url, token, timeout=timeout) as client:
        try:
            yield client
        except ApiError as exc:
            if exc.status_code >= 500:
                _fail(f"the l0sweep API at {client.url} failed: {exc}")
            _fail(str(exc))
        except httpx.TimeoutException:
            _fail(f"the l0sweep API at {client.url} did not answer within {client.timeout:g} s")
        except httpx.ConnectError as exc:
            _fail(
                f"cannot reach the l0sweep API at {client.url} ({_first_line(exc)}); "
                "is `l0sweep serve` running there? (--url or L0SWEEP_URL to change it)"
            )
        except httpx.HTTPError as exc:
            _fail(f"talking to the l0sweep API at {client.url}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(message: str) -> None:
    # One line (no wrapping), the message inert: it may quote what a user or server sent.
    console.print(f"[red]error:[/red] {render.inert(message)}", soft_wrap=True)
    raise typer.Exit(1)


def _wait_for_database(settings: Settings) -> None:
    """Start-up: wait (``L0SWEEP_DB_STARTUP_WAIT_S``) for the database; on failure one line
    instead of a traceback."""
    from service.db import create_engine_for, public_url, wait_for_database

    url = settings.resolved_database_url
    timeout_s = settings.db_startup_wait_s
    engine = create_engine_for(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        try:
            wait_for_database(engine, timeout_s=min(1.0, timeout_s))
        except Exception:
            console.print(f"waiting up to {timeout_s:.0f} s for the database at {public_url(url)}")
            wait_for_database(engine, timeout_s=timeout_s)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(f"database at {public_url(url)} unreachable after {timeout_s:.0f} s: {reason}")
    finally:
        engine.dispose()


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
    from workers.cli.embedded import EmbeddedService

    _setup_logging()
    settings = get_settings()
    _wait_for_database(settings)
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
    console.print(f"l0sweep dashboard on http://{host}:{port}/")
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
        typer.Option(
            help="Identity recorded on claimed sweeps (default HOSTNAME:uuid, unique per "
            "process); a runner restarted with the same id resumes its sweeps at once."
        ),
    ] = None,
) -> None:
    """Run the runner alone: resume interrupted sweeps, then claim and run pending ones."""
    from service.db import public_url, upgrade_database
    from workers.tune.cluster import connect_ray
    from workers.tune.runner import Runner
    from workers.tune.store import SweepStore

    _setup_logging()
    settings = get_settings()
    _wait_for_database(settings)
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
    console.print(
        f"l0sweep runner {runner.options.runner_id} ({public_url(settings.resolved_database_url)})"
    )
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
    from workers.tune.cluster import run_worker, worker_command

    cmd = worker_command(
        address, num_cpus=num_cpus, num_gpus=num_gpus, node_ip=node_ip, block=block
    )
    console.print("$ " + " ".join(cmd))
    raise typer.Exit(run_worker(cmd))


# ---------------------------------------------------------------------- client side


@app.command()
def submit(
    spec: Annotated[
        Path | None, typer.Argument(help="Sweep spec JSON file (DESIGN §5); or --preset.")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="One of the paper's experiments (l0sweep presets).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="With --preset: epochs per trial instead of 200.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="With --preset: PATH=VALUE, e.g. training.lr=0.002."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until it finishes.")] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Resubmitting with the same key never duplicates.")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Submit a sweep spec (a file, or --preset) to the API; with --wait, show a progress bar
    and the front."""
    from service.errors import NotFoundError
    from workers.cli.presets import preset_body

    if (spec is None) == (preset is None):
        _fail("give a spec file or --preset NAME (not both)")
    try:
        if preset is not None:
            body = preset_body(preset, epochs=epochs, sets=set_ or ())
        else:
            assert spec is not None
            body = json.loads(spec.read_text(encoding="utf-8"))
    except NotFoundError as exc:
        _fail(str(exc))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {spec or preset}: {exc}")
    with _api(url, token) as client:
        sweep = client.submit(body, idempotency_key=idempotency_key)
        console.print(f"sweep {sweep['id']} submitted: {sweep['n_trials']} trials")
        if wait:
            final = render.wait_with_progress(client, sweep["id"], console)
            render.print_front(console, client.pareto(final["id"]), final)
            if final["status"] != SweepStatus.COMPLETED:
                raise typer.Exit(1)


@app.command("presets")
def presets_command() -> None:
    """The paper's experiments as ready specs, beside the paper's error and architecture."""
    from workers.cli.presets import print_presets

    print_presets(console)


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
    from workers.cli.plot import front_svg

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
        console.print(f"sweep {render.inert(sweep['id'])}: {render.inert(sweep['status'])}")


@app.command("export")
def export_model(
    trial_id: Annotated[int, typer.Argument(help="Trial id (completed).")],
    path: Annotated[
        Path,
        typer.Argument(help="Where to write it; a suffix .pt, .onnx or .pt2 picks the format."),
    ],
    model_format: Annotated[
        ModelFormat | None,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="torchscript (torch.jit.load), onnx (onnxruntime) or pt2 (torch.export.load);"
            " default: from the file suffix, else torchscript.",
        ),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Download a trial's compacted model: one file that loads without l0sweep installed."""
    fmt = export_format(path, model_format)
    with _api(url, token) as client:
        target = client.download_model(trial_id, path, fmt.value)
    console.print(f"wrote {target} ({fmt}, {target.stat().st_size} bytes)")


def export_format(path: Path, given: ModelFormat | None) -> ModelFormat:
    """``--format``, else the one the suffix names, else TorchScript; a suffix of another
    format than ``--format`` is a mistake worth stopping for."""
    implied = ModelFormat.from_suffix(path.suffix)
    if given is not None and implied is not None and implied is not given:
        _fail(f"{path.name} is named like a {implied} file but --format is {given}")
    return given or implied or ModelFormat.TORCHSCRIPT


@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="Epochs per trial.")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the demo's database and checkpoints go.")
    ] = None,
) -> None:
    """A real L0 sweep on MNIST (MLP 300-100, a λ grid) on the embedded service."""
    from workers.cli.demo import run_demo

    _setup_logging()
    logging.getLogger("workers").setLevel(logging.WARNING)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    code = run_demo(console, epochs=epochs or None, data_dir=data_dir)
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover - console-script convenience
    app(sys.argv[1:])
