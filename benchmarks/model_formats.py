"""Model formats: exporting every format when a trial completes vs converting on request.

For the compacted MLP 784-300-100 (gates set to the paper's 219-214-100) and LeNet-5-Caffe
(20-25-45-462):

1. At completion (what the trainable does, in a long-lived Ray worker): seconds per member
   for each format, warm (median of --repeats), and the file sizes. The cost added by the
   formats is pt2 + onnx (TorchScript was exported before too), compared with one MNIST
   training epoch of that model on this machine (measured on --epoch-subset examples and
   scaled to 60,000) and with a paper-length trial (200 epochs).
2. Lazily on first request (the alternative that keeps the API free of torch: the API asks,
   a runner converts and stores, the client comes back): the conversion alone, warm in a
   process that has exported before, and cold in a fresh process (import torch and the
   exporter, load the stored pt2 program, write the ONNX file) - the least a first
   download would wait, before any queueing behind a runner that is inside a Tune run.

    .venv/bin/python benchmarks/model_formats.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import torch
from onnx_inference import set_architecture

import l0models
from l0models import L0MLP, L0LeNet5, export_program, onnx_model_bytes, pt2_model_bytes
from l0models.base import L0Model

CASES: dict[str, tuple[Callable[[], L0Model], tuple[int, ...]]] = {
    "MLP 784-300-100": (L0MLP, (219, 214, 100)),
    "LeNet-5-Caffe": (L0LeNet5, (20, 25, 45, 462)),
}


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def epoch_seconds(make: Callable[[], L0Model], subset: int) -> float:
    """One MNIST training epoch of the model (batch 100, Adam), from ``subset`` examples
    scaled to 60,000 (evaluated on 1,000 test images, so the scaling is of training)."""
    config = make().config  # type: ignore[attr-defined]
    data = l0models.load_dataset("mnist", subset=subset)
    data = dataclasses.replace(data, x_test=data.x_test[:1000], y_test=data.y_test[:1000])
    records: list[l0models.EpochRecord] = []
    l0models.train_model(
        config,
        lam=0.1,
        beta=2 / 3,
        seed=0,
        settings=l0models.TrainSettings(epochs=1),
        data=data,
        on_epoch=lambda record, state: records.append(record),
    )
    return records[0].seconds * 60_000 / subset


COLD = """
import io, sys, time, warnings
t0 = time.perf_counter()
import torch
warnings.simplefilter("ignore")
program = torch.export.load(sys.argv[1])
onnx_program = torch.onnx.export(program, dynamo=True, external_data=False, verbose=False)
data = onnx_program.model_proto.SerializeToString()
print(time.perf_counter() - t0, len(data))
"""


def measure_case(
    name: str, make: Callable[[], L0Model], arch: tuple[int, ...], args: argparse.Namespace
) -> None:
    torch.manual_seed(0)
    model = make().eval()
    set_architecture(model, arch)
    compacted = l0models.compact(model)
    shape = (1, 28, 28)
    program = export_program(compacted, input_shape=shape)
    pt2 = pt2_model_bytes(program)
    sizes = {
        "torchscript": len(l0models.compact_model_bytes(compacted)),
        "pt2": len(pt2),
        "onnx": len(onnx_model_bytes(program)),
    }
    warm = {
        "torchscript": median_seconds(
            lambda: l0models.compact_model_bytes(compacted), args.repeats
        ),
        "torch.export": median_seconds(
            lambda: export_program(compacted, input_shape=shape), args.repeats
        ),
        "pt2 save": median_seconds(lambda: pt2_model_bytes(program), args.repeats),
        "onnx": median_seconds(lambda: onnx_model_bytes(program), args.repeats),
    }
    added = warm["torch.export"] + warm["pt2 save"] + warm["onnx"]
    epoch = epoch_seconds(make, args.epoch_subset)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "model.pt2")
        path.write_bytes(pt2)
        colds = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(COLD), str(path)],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            colds.append(float(out.stdout.split()[0]))
        t0 = time.perf_counter()
        loaded = torch.export.load(io.BytesIO(pt2))
        onnx_model_bytes(loaded)
        lazy_warm = time.perf_counter() - t0
    print(f"\n{name} kept {'-'.join(map(str, arch))}")
    print("  files (KiB): " + ", ".join(f"{fmt} {size / 1024:.0f}" for fmt, size in sizes.items()))
    print("  at completion, warm s/member: " + ", ".join(f"{k} {v:.3f}" for k, v in warm.items()))
    print(
        f"  added by pt2 + onnx: {added:.2f} s/member = {added / epoch:.2f} MNIST epochs "
        f"({epoch:.1f} s/epoch here) = {100 * added / (200 * epoch):.2f} % of a 200-epoch trial"
    )
    print(
        f"  lazy on first request: conversion {lazy_warm:.2f} s warm, "
        f"{min(colds):.1f} s in a fresh process (+ waiting for a runner to pick it up)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epoch-subset", type=int, default=6000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {args.threads} thread(s); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for name, (make, arch) in CASES.items():
        measure_case(name, make, arch, args)


if __name__ == "__main__":
    main()
