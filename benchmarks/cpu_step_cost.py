"""CPU cost of training steps, as process CPU time: for comparing two versions of l0models
on a shared, loaded machine, where wall-clock rates swing with other people's jobs.

One torch thread, so CPU time is the time the step would take alone (minus cache and
memory-bandwidth contention, which CPU time does not remove). MNIST, L0 MLP 784-300-100,
batch 100; per configuration one epoch on the first ``--steps`` batches (its test pass on
``--test`` images included), as ``train_model`` / ``train_fused`` run it; reported: CPU
milliseconds per member-step (median over ``--rounds``, configurations interleaved) and the
wall-clock time beside it.

    .venv/bin/python benchmarks/cpu_step_cost.py     # the l0models of this checkout

To compare with another version, copy this file into that checkout's ``benchmarks/`` and
run it from there too (it imports the l0models beside it), alternating the two.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import l0models
from l0models import MLPConfig, TrainSettings, load_dataset, train_model
from l0models.fused import MemberSpec, train_fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per epoch")
    parser.add_argument("--test", type=int, default=1000, help="test images evaluated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ks", default="4,16", help="fused pack sizes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist")
    n = args.steps * 100
    data = dataclasses.replace(
        data,
        x_train=data.x_train[:n],
        y_train=data.y_train[:n],
        x_test=data.x_test[: args.test],
        y_test=data.y_test[: args.test],
    )
    config = MLPConfig(hidden=(300, 100))

    def single(local_rep: bool) -> None:
        settings = TrainSettings(epochs=1, local_rep=local_rep)
        train_model(config, lam=0.1, beta=2 / 3, seed=0, settings=settings, data=data)

    def fused(k: int) -> None:
        members = [MemberSpec(0.1 * (i + 1), (0.5, 2 / 3)[i % 2], 100 + i) for i in range(k)]
        train_fused(config, members, settings=TrainSettings(epochs=1), data=data)

    runs = {"train_model per-minibatch noise": (lambda: single(False), 1)}
    runs["train_model per-example noise"] = (lambda: single(True), 1)
    for k in (int(v) for v in args.ks.split(",") if v):
        runs[f"train_fused K={k}"] = (lambda k=k: fused(k), k)
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    for run, _ in runs.values():
        run()  # warm-up
    for _ in range(args.rounds):
        for name, (run, members) in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            run()
            per = 1e3 / (args.steps * members)
            cpu[name].append((time.process_time() - c0) * per)
            wall[name].append((time.perf_counter() - w0) * per)
    print(f"l0models from {Path(l0models.__file__).parent}, torch {torch.__version__}, 1 thread")
    for name in runs:
        print(
            f"{name:34s} CPU {statistics.median(cpu[name]):7.3f} ms/member-step "
            f"(min {min(cpu[name]):.3f}); wall {statistics.median(wall[name]):7.3f}"
        )


if __name__ == "__main__":
    main()
