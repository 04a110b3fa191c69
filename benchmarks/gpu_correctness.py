"""GPU correctness checks of issue 12, before any timing: the counter-based gate noise gives
the CPU's bits on the GPU (eager torch ops, and compiled into one kernel), and a fused
member trained on the GPU with the compiled (CUDA-graph) step equals its single run there.

Prints one ``FIGURE check ...`` line per check (met/MISSED); ``--check`` exits 1 on a miss.

    python3 benchmarks/gpu_correctness.py --device cuda
    .venv/bin/python benchmarks/gpu_correctness.py --dry-run    # the CPU against itself
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import Targets, add_check_flag

from l0models import MLPConfig, TrainSettings, train_model
from l0models.datasets import synthetic_dataset
from l0models.fused import MemberSpec, train_fused
from l0models.noise import compile_uniforms, counter_uniforms


def noise_bits(device: torch.device, targets: Targets) -> None:
    keys, streams = [0, 7, 2**40 + 3], [0, 0, 5]
    want = counter_uniforms(keys, 123, 9, 2, 4001, streams=streams)  # CPU (NumPy)
    for compiled in (False, True) if device.type == "cuda" else (False,):
        compile_uniforms(compiled)
        t0 = time.perf_counter()
        got = counter_uniforms(keys, 123, 9, 2, 4001, streams=streams, device=device).cpu()
        seconds = time.perf_counter() - t0
        same = torch.equal(got, want)
        print(
            f"FIGURE check gate-noise bits on {device} "
            f"({'compiled' if compiled else 'eager'} ops, {seconds:.1f} s) equal the CPU's: "
            f"{same} ({targets.at_least(f'noise bits compiled={compiled}', float(same), 1)})",
            flush=True,
        )
    compile_uniforms(False)


def member_equals_single(device: torch.device, compile: bool, targets: Targets) -> None:
    data = synthetic_dataset(n_train=1000, n_test=500)
    settings = TrainSettings(epochs=2, batch_size=100)
    config = MLPConfig(hidden=(300, 100))
    members = [MemberSpec(0.1, 2 / 3, 3), MemberSpec(1.0, 0.5, 4)]
    fused = train_fused(
        config, members, settings=settings, data=data, device=device, compile=compile
    )
    steps = settings.epochs * math.ceil(data.n_train / settings.batch_size)
    worst, same_arch = 0.0, True
    for spec, got in zip(members, fused, strict=True):
        want = train_model(
            config, lam=spec.lam, beta=spec.beta, seed=spec.seed, settings=settings, data=data,
            device=device,
        )  # fmt: skip
        for name, w in want.model.state_dict().items():
            worst = max(worst, float((got.model.state_dict()[name] - w).abs().max()))
        same_arch &= got.measures.architecture == want.measures.architecture
    ok = worst <= settings.lr * steps and same_arch
    verdict = targets.at_least(f"member=single compile={compile}", float(ok), 1)
    print(
        f"FIGURE check fused member = single run on {device} (compile={compile}): largest "
        f"parameter difference {worst:.1e} (bound lr x steps = {settings.lr * steps:g}), same "
        f"architecture {same_arch} ({verdict})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="the CPU (no compile)")
    add_check_flag(parser)
    args = parser.parse_args()
    device = torch.device("cpu" if args.dry_run else args.device)
    targets = Targets.from_args(args)
    noise_bits(device, targets)
    member_equals_single(device, False, targets)
    if device.type == "cuda":
        member_equals_single(device, True, targets)
    targets.finish()


if __name__ == "__main__":
    main()
