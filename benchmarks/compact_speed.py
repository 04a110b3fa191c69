"""Inference of the compacted model vs the gated test-time model at about 80 % sparsity.

Gates are set (not trained) so that a random ~80 % of the parameters are pruned and the
kept gates take random test-time values in (0, 1]; the two models compute the same
function (checked). Timings are interleaved in rounds; the speedup is the median of
per-round ratios and is compared with 0.7 × the FLOPs ratio dense/compacted.

    .venv/bin/python benchmarks/compact_speed.py [--threads 1] [--batch 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from targets import Targets, add_check_flag

from l0models import L0MLP, L0LeNet5, compact, count_flops, count_params
from l0models.base import L0Model


def set_gates(model: L0Model, keep: list[float], seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer, fraction in zip(model.l0_layers(), keep, strict=True):
            n = layer.log_alpha.numel()
            la = torch.empty(n).uniform_(-1.0, 4.0, generator=g)  # open, ẑ in (0.17, 1]
            closed = torch.randperm(n, generator=g)[: n - round(fraction * n)]
            la[closed] = -6.0
            layer.log_alpha.copy_(la)


def bench(model: L0Model, x: torch.Tensor, rounds: int, reps: int) -> dict[str, float]:
    model.eval()
    compacted = compact(model)
    with torch.no_grad():
        assert (model(x) - compacted(x)).abs().max().item() < 1e-4
    dense_params, dense_flops = model.cost(model.dense_counts())
    flops = count_flops(compacted, model.input_shape)
    sparsity = 1 - count_params(compacted) / dense_params
    runs = {"gated": model, "compacted": compacted}
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        for m in runs.values():
            for _ in range(3):
                m(x)
        for _ in range(rounds):
            for name, m in runs.items():
                t0 = time.perf_counter()
                for _ in range(reps):
                    m(x)
                times[name].append((time.perf_counter() - t0) / reps)
    ratios = [g / c for g, c in zip(times["gated"], times["compacted"], strict=True)]
    return {
        "sparsity": sparsity,
        "flops_ratio": dense_flops / flops,
        "gated_ms": min(times["gated"]) * 1e3,
        "compacted_ms": min(times["compacted"]) * 1e3,
        "speedup": statistics.median(ratios),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    add_check_flag(parser)
    args = parser.parse_args()
    targets = Targets.from_args(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28)
    cases = {
        # Keep fractions per gated layer chosen for ≈ 80 % fewer parameters.
        "MLP 784-300-100": (L0MLP(), [0.55, 0.4, 0.5], 20),
        "LeNet-5-Caffe": (L0LeNet5(), [0.6, 0.6, 0.6, 0.5], 3),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}")
    for name, (model, keep, reps) in cases.items():
        set_gates(model, keep)
        r = bench(model, x, args.rounds, reps)
        target = 0.7 * r["flops_ratio"]
        print(
            f"{name}: sparsity {r['sparsity']:.3f}, FLOPs ratio {r['flops_ratio']:.2f}; "
            f"gated {r['gated_ms']:.2f} ms, compacted {r['compacted_ms']:.2f} ms per batch; "
            f"speedup {r['speedup']:.2f} (target >= 0.7 x FLOPs ratio = {target:.2f}: "
            f"{targets.at_least(name, r['speedup'], target)})"
        )
    targets.finish()


if __name__ == "__main__":
    main()
