"""A real sweep on one machine's GPU through ``l0sweep serve`` (local Ray, SQLite): packs of
the L0 MLP share the GPU (``gpus_per_trial: 0.25``: four at once), then every trial is
checked: completed, its node and device (the GPU's name) recorded, and its downloaded
TorchScript model reproduces the accuracy the trial reported on the test set.

Starts ``python -m workers.cli serve`` in a fresh work directory (its own SQLite database,
token and Ray storage; datasets from ``$L0SWEEP_DATA_DIR`` as usual), submits the spec over
HTTP, polls the trials every 0.5 s (the most packs running at once is counted from the
trials' ``pack`` and status), then stops the server. Prints ``FIGURE`` lines.

    python3 benchmarks/gpu_sweep.py                       # GPU: 4 packs of 4, 0.25 GPU each
    .venv/bin/python benchmarks/gpu_sweep.py --dry-run    # CPU: 0.5 CPU per pack, synthetic
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import Targets, add_check_flag

from l0models import load_dataset
from workers.cli.client import ApiClient

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "gpu-check-token"


def spec_for(args: argparse.Namespace) -> dict[str, Any]:
    lambdas = [float(v) for v in np.geomspace(0.01, 1.0, args.packs * args.k)]
    return {
        "name": "gpu-check",
        "model": {"arch": "mlp", "hidden": [300, 100]},
        "dataset": args.dataset,
        "lambdas": lambdas,
        "betas": [2 / 3],
        "seeds": [0],
        "training": {"epochs": args.epochs, "batch_size": 100, "precision": args.precision},
        "resources": {"cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial},
        "fuse": args.k,
    }


def start_server(workdir: Path, port: int, num_cpus: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        L0SWEEP_DATABASE_URL=f"sqlite:///{workdir / 'l0sweep.db'}",
        L0SWEEP_API_TOKENS=TOKEN,
        L0SWEEP_ENVIRONMENT="dev",
        # A Ray instance of its own even where another one runs on this machine.
        RAY_ADDRESS="local",
    )
    log = (workdir / "serve.log").open("wb")
    command = [
        sys.executable, "-m", "workers.cli", "serve", "--port", str(port),
        "--num-cpus", str(num_cpus), "--storage-path", str(workdir / "ray_results"),
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(client: ApiClient, server: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"l0sweep serve exited with {server.returncode} (see serve.log)")
        try:
            client.health()
            return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f"l0sweep serve not healthy after {timeout_s:.0f} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def model_accuracy(path: Path, x: torch.Tensor, y: torch.Tensor) -> float:
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        model = torch.jit.load(str(path), map_location="cpu").eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], 1000):
            correct += int((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum())
    return correct / x.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packs", type=int, default=4)
    parser.add_argument("--k", type=int, default=4, help="members per pack (spec fuse)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--gpus-per-trial", type=float, default=0.25)
    parser.add_argument("--cpus-per-trial", type=float, default=2)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "synthetic"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32"))
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workdir", default=None, help="default: a new temporary directory")
    parser.add_argument("--timeout", type=float, default=420, help="seconds for the sweep")
    parser.add_argument("--dry-run", action="store_true", help="CPU-only Ray, synthetic data")
    add_check_flag(parser)
    args = parser.parse_args()
    if args.dry_run:
        args.gpus_per_trial, args.cpus_per_trial, args.num_cpus = 0.0, 0.5, 2
        args.dataset, args.k, args.epochs = "synthetic", 2, 1
    if args.dataset == "mnist":
        try:
            data = load_dataset("mnist")
        except Exception as exc:  # no MNIST cache on this machine: same work, other pixels
            print(f"note: MNIST not available ({exc!r:.120}); using the synthetic dataset")
            args.dataset = "synthetic"
    if args.dataset == "synthetic":
        data = load_dataset("synthetic")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="l0sweep-gpu-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    targets = Targets.from_args(args)
    url = f"http://127.0.0.1:{args.port}"
    server = start_server(workdir, args.port, args.num_cpus)
    try:
        client = ApiClient(url, token=TOKEN, timeout=30)
        wait_healthy(client, server, timeout_s=180)
        t0 = time.monotonic()
        sweep = client.submit(spec_for(args))
        most_packs = 0
        deadline = t0 + args.timeout
        while True:
            trials = client.trials(sweep["id"])
            running = {t["pack"] or t["id"] for t in trials if t["status"] == "running"}
            most_packs = max(most_packs, len(running))
            state = client.sweep(sweep["id"])
            if state["status"] in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"sweep still {state['status']} after {args.timeout:.0f} s")
            time.sleep(0.5)
        seconds = time.monotonic() - t0
        trials = client.trials(sweep["id"])
        done = [t for t in trials if t["status"] == "completed"]
        devices = sorted({str((t["metrics"] or {}).get("device")) for t in done})
        no_node = [t["id"] for t in done if not t["node"]]
        want_gpu = args.gpus_per_trial > 0
        on_device = all(
            (t["metrics"] or {}).get("device") not in (None, "cpu") if want_gpu else True
            for t in done
        )
        x = data.x_test.float() if data.x_test.dtype != torch.uint8 else data.x_test.float() / 255
        mismatched = []
        for t in done:
            path = client.download_model(t["id"], workdir / f"trial-{t['id']}.pt")
            got = model_accuracy(path, x, data.y_test)
            if abs(got - t["metrics"]["accuracy"]) > 2 / x.shape[0]:
                mismatched.append((t["id"], got, t["metrics"]["accuracy"]))
        n = len(trials)
        print(f"sweep {sweep['id']}: {state['status']} in {seconds:.0f} s; work dir {workdir}")
        print(
            f"FIGURE ray sweep trials completed: {len(done)}/{n} "
            f"({targets.at_least('all trials completed', len(done), n)})"
        )
        print(
            f"FIGURE ray sweep packs running at once (gpus_per_trial {args.gpus_per_trial:g}): "
            f"{most_packs} (target >= {args.packs}: "
            f"{targets.at_least('packs at once', most_packs, args.packs)})"
        )
        print(
            f"FIGURE ray sweep node and device recorded: devices {devices}, trials without node "
            f"{len(no_node)}, GPU recorded {on_device if want_gpu else 'n/a (CPU run)'} "
            f"({targets.at_least('node and device', float(not no_node and on_device), 1)})"
        )
        print(
            f"FIGURE ray sweep downloaded models reproduce accuracy: {len(done) - len(mismatched)}"
            f"/{len(done)} within 2 test examples "
            f"({targets.at_least('models reproduce', float(not mismatched and bool(done)), 1)})"
            + (f"; mismatches {mismatched[:3]}" if mismatched else "")
        )
    finally:
        stop_server(server)
    targets.finish()


if __name__ == "__main__":
    main()
