"""Fused training throughput on one device: trial-epochs per second of ``train_fused`` for
the L0 MLP 784-300-100 and LeNet-5-Caffe, per-member gate noise, test evaluation included.

Each figure is one ``train_fused`` run of two epochs on a fraction f of MNIST (training and
test sets cut alike, whole batches, batch 100); the second epoch's wall time
(``EpochRecord.seconds``: its steps and its test-set evaluation) divided by f is the time of
a full epoch, so compilation and CUDA-graph capture (first epoch) are not in it. Rate =
K / that time. Prints one ``FIGURE`` line per figure with its target (issue 12, H200):
MLP K=256 ≥ 300 trial-epochs/s, LeNet-5 K=128 ≥ 20.

    python3 benchmarks/gpu_throughput.py --device cuda                  # the GPU figures
    python3 benchmarks/gpu_throughput.py --device cuda --precision tf32 --compile off
    .venv/bin/python benchmarks/gpu_throughput.py --dry-run             # CPU, tiny sizes
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import Targets, add_check_flag

from l0models import Dataset, LeNet5Config, MLPConfig, TrainSettings, load_dataset
from l0models.datasets import synthetic_dataset
from l0models.fused import MemberSpec, train_fused

TARGETS = {("mlp", 256): 300.0, ("lenet", 128): 20.0}


def members(k: int) -> list[MemberSpec]:
    lams = np.geomspace(0.01, 1.0, k)
    return [MemberSpec(float(lams[i]), (0.5, 2 / 3)[i % 2], 1000 + i) for i in range(k)]


def fraction_of(data: Dataset, f: float, batch: int) -> Dataset:
    """The first f of the training set (whole batches) and of the test set."""
    n_train = max(batch, round(data.n_train * f / batch) * batch)
    n_test = max(batch, round(data.x_test.shape[0] * f))
    return dataclasses.replace(
        data,
        x_train=data.x_train[:n_train],
        y_train=data.y_train[:n_train],
        x_test=data.x_test[:n_test],
        y_test=data.y_test[:n_test],
    )


def load(kind: str, device: torch.device) -> Dataset:
    """MNIST on ``device``; ``random``: MNIST-shaped synthetic images (the same work)."""
    if kind == "mnist":
        try:
            return load_dataset("mnist", device=device)
        except Exception as exc:  # no MNIST cache on this machine: the same work on other pixels
            print(f"note: MNIST not available ({exc!r:.120}); using MNIST-shaped random data")
    return synthetic_dataset(n_train=60_000, n_test=10_000).to(device)


def trial_epochs_per_second(
    config: MLPConfig | LeNet5Config,
    k: int,
    data: Dataset,
    f: float,
    *,
    device: torch.device,
    precision: str,
    compile: bool | None,
) -> tuple[float, float]:
    """(trial-epochs/s from the second epoch, seconds the whole run took)."""
    part = fraction_of(data, f, 100)
    f_used = part.n_train / data.n_train
    settings = TrainSettings(epochs=2, batch_size=100, precision=precision)
    t0 = time.perf_counter()
    results = train_fused(
        config, members(k), settings=settings, data=part, device=device, compile=compile
    )
    total = time.perf_counter() - t0
    epoch_seconds = results[0].history[1].seconds / f_used
    return k / epoch_seconds, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--mlp-ks", default="64,256")
    parser.add_argument("--lenet-ks", default="32,128")
    parser.add_argument("--fraction", type=float, default=1.0, help="of MNIST per epoch")
    parser.add_argument("--lenet-fraction", type=float, default=0.5)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32"))
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--data", default="mnist", choices=("mnist", "random"))
    parser.add_argument(
        "--dry-run", action="store_true", help="CPU, K 2/4, 2 %% of random data: the script"
    )
    add_check_flag(parser)
    args = parser.parse_args()
    if args.dry_run:
        args.device, args.data, args.mlp_ks, args.lenet_ks = "cpu", "random", "2,4", "2"
        args.fraction = args.lenet_fraction = 0.02
    device = torch.device(args.device)
    compile = {"auto": None, "on": True, "off": False}[args.compile]
    data = load(args.data, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}, torch {torch.__version__}, data {args.data} on {device}")
    targets = Targets.from_args(args)
    runs = [
        ("mlp", MLPConfig(hidden=(300, 100)), int(k), args.fraction)
        for k in args.mlp_ks.split(",")
        if k
    ]
    runs += [
        ("lenet", LeNet5Config(), int(k), args.lenet_fraction)
        for k in args.lenet_ks.split(",")
        if k
    ]
    for kind, config, k, f in runs:
        rate, total = trial_epochs_per_second(
            config, k, data, f, device=device, precision=args.precision, compile=compile
        )
        target = TARGETS.get((kind, k))
        verdict = (
            "no target"
            if target is None
            else (f"target >= {target:g}: {targets.at_least(f'{kind} K={k}', rate, target)}")
        )
        print(
            f"FIGURE fused {kind} K={k} {args.precision} member-noise compile={args.compile} "
            f"eval-included on {name}: {rate:.3g} trial-epochs/s ({verdict}; "
            f"fraction {f:g}, run {total:.0f} s)",
            flush=True,
        )
    targets.finish()


if __name__ == "__main__":
    main()
