"""One training step of the L0 MLP 784-300-100 vs the same dense MLP (CPU, batch 100).

Both step with Adam (lr 1e-3) on the same batch; the dense MLP gets the same L2 strength
through Adam's weight decay. The L0 model is timed in both noise modes: one gate sample per
minibatch, and one per example ("local_rep"). Timings are interleaved in rounds so that
background load hits all variants alike; the ratio reported is the median of per-round
ratios, with the min-of-rounds times alongside. A plain per-example version (every op
through autograd, as the reference code writes it) is timed too, for comparison.

    .venv/bin/python benchmarks/l0_overhead.py [--threads 1] [--rounds 15]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from targets import Targets, add_check_flag
from torch import nn

from l0models import MLPConfig, build_model
from l0models.training import noise_stream


def dense_step(x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    model = nn.Sequential(
        nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def l0_step(x: torch.Tensor, y: torch.Tensor, *, local_rep: bool) -> Callable[[], None]:
    model = build_model(
        MLPConfig(), beta=2 / 3, lam=0.1, weight_decay=5e-4, n_train=60000, local_rep=local_rep
    )
    model.train()
    # The gates' counter-based noise, fed per step as train_epoch feeds it.
    layers = model.l0_layers()
    noise = noise_stream(0, model, torch.device("cpu"), batch_size=x.shape[0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        for layer, z in zip(layers, noise.next(x.shape[0]), strict=True):
            layer.noise = z[0]
        loss = F.cross_entropy(model(x), y) + model.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.clamp_log_alpha_()

    return step


class NaivePerExampleMLP(nn.Module):
    """The plain per-example L0 MLP, as the reference code writes it: every gate op and the
    penalty through autograd, the input gated before each matmul. Same math as l0models."""

    def __init__(self) -> None:
        super().__init__()
        dims = [784, 300, 100, 10]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(o, i) * (2 / i) ** 0.5) for i, o in itertools.pairwise(dims)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(o)) for o in dims[1:])
        self.log_alphas = nn.ParameterList(nn.Parameter(torch.zeros(i)) for i in dims[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta, gamma, zeta = 2 / 3, -0.1, 1.1
        h = x
        layers = zip(self.weights, self.biases, self.log_alphas, strict=True)
        for i, (w, b, la) in enumerate(layers):
            u = torch.rand(h.shape[0], la.shape[0]).clamp(1e-6, 1 - 1e-6)
            s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + la) / beta)
            z = torch.clamp(s * (zeta - gamma) + gamma, 0, 1)
            h = F.linear(h * z, w, b)
            if i < 2:
                h = F.relu(h)
        return h

    def penalty(self) -> torch.Tensor:
        total = torch.zeros(())
        for w, b, la in zip(self.weights, self.biases, self.log_alphas, strict=True):
            p = torch.sigmoid(la - (2 / 3) * torch.log(torch.tensor(0.1 / 1.1)))
            cost = (0.5 * 5e-4 * w.pow(2) + 0.1 / 60000).sum(0)
            total = total + (p * cost).sum() + 0.5 * 5e-4 * b.pow(2).sum()
        return total


def naive_step(x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    model = NaivePerExampleMLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = F.cross_entropy(model(x), y) + model.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for la in model.log_alphas:
                la.clamp_(-4.605, 4.605)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=40, help="steps per variant per round")
    add_check_flag(parser)
    args = parser.parse_args()
    targets = Targets.from_args(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = torch.rand(100, 784), torch.randint(10, (100,))
    variants = {
        "dense": dense_step(x, y),
        "l0 per-minibatch": l0_step(x, y, local_rep=False),
        "l0 per-example": l0_step(x, y, local_rep=True),
        "naive per-example": naive_step(x, y),
    }
    for step in variants.values():  # warm-up
        for _ in range(20):
            step()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - t0) / args.steps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch 100")
    for name in variants:
        print(
            f"{name:18s} min {min(times[name]) * 1e3:6.3f} ms/step   "
            f"median {statistics.median(times[name]) * 1e3:6.3f} ms/step"
        )
    for name in ("l0 per-minibatch", "l0 per-example", "naive per-example"):
        ratios = [a / d for a, d in zip(times[name], times["dense"], strict=True)]
        verdict = ""
        if name == "l0 per-minibatch":
            ok = targets.at_most(name, statistics.median(ratios), 1.3)
            verdict = f" (target <= 1.3: {ok})"
        print(
            f"ratio {name} / dense: median of rounds {statistics.median(ratios):.2f}, "
            f"min/min {min(times[name]) / min(times['dense']):.2f}{verdict}"
        )
    targets.finish()


if __name__ == "__main__":
    main()
