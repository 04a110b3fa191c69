"""A fused pack gets faster when members stop early: MNIST, L0 MLP 784-300-100, K = 8.

Early stopping (issue 13) removes a stopped member from the pack's stacked computation
(``train_fused(should_stop=...)``: the survivors are re-packed). This measures what that
buys: the wall time of one epoch (``EpochRecord.seconds``: training plus the per-epoch
test evaluation) of

* ``all 8``: the pack of 8 members, nobody stopped;
* ``2 left``: the same pack after 6 members were stopped at epoch 1 (the survivors train on
  as a pack of 2).

Both continue from one shared state after epoch 1 (``resume=``): ``all 8`` with no stop,
``2 left`` with a ``should_stop`` that stops members 2..7 at the resume ask, so the timed
pack is the one the trainer re-packed itself. The two alternate for ``--rounds`` rounds of
``--epochs`` timed epochs each; medians are printed, and the ratio all-8 / 2-left epoch
time (the speed-up of the pack after the stops; 8 / 2 = 4 if every cost scaled with K).
``overhead`` is the rest of each call (setup, re-pack, final measures), not in the epochs.

On a shared machine wall times swing with the load, so the process CPU time of each epoch
after the first timed one (between the ``on_epoch`` calls of consecutive epochs) is printed
too, with its own ratio; ``--threads 1`` keeps spinning OpenMP threads out of it.

    .venv/bin/python benchmarks/fused_stop_speed.py                      # whole MNIST
    .venv/bin/python benchmarks/fused_stop_speed.py --train-subset 20000 --epochs 1
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l0models import Dataset, EpochRecord, MLPConfig, TrainSettings, load_dataset
from l0models.fused import FusedState, MemberSpec, train_fused

CONFIG = MLPConfig(hidden=(300, 100))
K, KEEP = 8, 2  # members 0..KEEP-1 survive


def members(k: int) -> list[MemberSpec]:
    lams = np.geomspace(0.01, 1.0, k)
    return [MemberSpec(float(lams[i]), (0.5, 2 / 3)[i % 2], 1000 + i) for i in range(k)]


def first_epoch(data: Dataset, settings: TrainSettings, device: torch.device) -> FusedState:
    """The state of the K-member pack after epoch 1 (what both configurations continue)."""
    states: list[FusedState] = []
    one = dataclasses.replace(settings, epochs=1)
    t0 = time.perf_counter()
    train_fused(CONFIG, members(K), settings=one, data=data, device=device, on_state=states.append)
    print(f"epoch 1 of the pack of {K}: {time.perf_counter() - t0:.1f} s (untimed)", flush=True)
    return states[-1]


def timed(
    state: FusedState,
    data: Dataset,
    settings: TrainSettings,
    device: torch.device,
    *,
    stop: bool,
) -> tuple[list[float], list[float], float, int]:
    """Continue ``state`` for ``settings.epochs - 1`` epochs: (epoch wall seconds, CPU
    seconds of the epochs after the first, overhead, members trained)."""
    seconds: dict[int, float] = {}
    cpu_marks: dict[int, float] = {}
    trained: set[int] = set()

    def on_epoch(k: int, record: EpochRecord) -> None:
        seconds[record.epoch] = record.seconds  # shared by the pack's members
        cpu_marks.setdefault(record.epoch, time.process_time())
        trained.add(k)

    def should_stop(k: int, _history: Sequence[EpochRecord]) -> bool:
        return stop and k >= KEEP

    t0 = time.perf_counter()
    results = train_fused(
        CONFIG, members(K), settings=settings, data=data, device=device, resume=state,
        on_epoch=on_epoch, should_stop=should_stop,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    if stop:
        assert [r.stopped_epoch for r in results] == [None] * KEEP + [1] * (K - KEEP)
    epochs = [seconds[e] for e in sorted(seconds)]
    marks = [cpu_marks[e] for e in sorted(cpu_marks)]
    cpu = [b - a for a, b in itertools.pairwise(marks)]
    return epochs, cpu, wall - sum(epochs), len(trained)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two packs")
    parser.add_argument("--train-subset", type=int, default=None, help="first N train images")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load_dataset("mnist", device=device, subset=args.train_subset)
    settings = TrainSettings(epochs=1 + args.epochs, batch_size=100, lr=1e-3)
    print(
        f"fused_stop_speed: MNIST {data.n_train} train / {data.x_test.shape[0]} test, MLP "
        f"784-300-100, batch 100, Adam, K={K}, {K - KEEP} stopped after epoch 1; "
        f"{platform.machine()} {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
        f"device {device}, torch {torch.__version__}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    state = first_epoch(data, settings, device)
    times: dict[str, list[float]] = {"all 8": [], "2 left": []}
    cpu_times: dict[str, list[float]] = {"all 8": [], "2 left": []}
    for r in range(args.rounds):
        for name, stop in (("all 8", False), ("2 left", True)):
            epochs, cpu, overhead, trained = timed(state, data, settings, device, stop=stop)
            times[name] += epochs
            cpu_times[name] += cpu
            print(
                f"round {r + 1} {name:>6}: {trained} members, epoch s "
                f"{', '.join(f'{s:.2f}' for s in epochs)} (CPU s of epochs 3+: "
                f"{', '.join(f'{s:.2f}' for s in cpu) or '-'}); overhead {overhead:.2f} s, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, m in median.items():
        members_left = K if name == "all 8" else KEEP
        print(f"{name:>6}: median epoch {m:.2f} s, {members_left / m:.2f} member-epochs/s")
    if all(cpu_times.values()):
        cpu_median = {name: statistics.median(t) for name, t in cpu_times.items()}
        print(
            f"CPU time per epoch: all 8 {cpu_median['all 8']:.2f} s, 2 left "
            f"{cpu_median['2 left']:.2f} s, ratio {cpu_median['all 8'] / cpu_median['2 left']:.2f}"
        )
    ratio = median["all 8"] / median["2 left"]
    print(f"fused_stop_speed: ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
