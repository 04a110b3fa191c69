"""Fused sweeps vs one trial at a time: trial-epochs per second, MNIST, L0 MLP 300-100.

Measured side by side in one run (median over ``--rounds``, configurations interleaved so
load swings hit all of them):

* ``resident``: one trial at a time with the library's ``train_model`` (data resident on
  the device as tensors);
* ``reference``: a reference-style trial: torchvision-style per-item dataset (uint8 array →
  PIL image → ``ToTensor``), ``DataLoader(batch_size=100, shuffle=True)``, the same L0 model
  and Adam step, test accuracy through a per-item loader every epoch;
* ``fused K``: ``train_fused`` with K members (λ, β, seed all different).

Each timing is the wall time of one training epoch including the per-epoch test evaluation
(``EpochRecord.seconds``). To keep the run short, an epoch may be run on a fraction f of
the training and test sets and its time divided by f: the work per epoch (steps and test
batches) is linear in the set sizes, and the report prints f for every configuration. f is
chosen per configuration from a short probe so that one measurement takes at most
``--time-budget`` seconds.

    .venv/bin/python benchmarks/fused_vs_sequential.py                  # CPU, K = 4, 16, 64
    .venv/bin/python benchmarks/fused_vs_sequential.py --device cuda --ks 4,16,64,128,256
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l0models import (
    Dataset,
    LeNet5Config,
    MLPConfig,
    TrainSettings,
    build_model,
    load_dataset,
    train_model,
)
from l0models.fused import MemberSpec, auto_pack_size, train_fused

MODELS = {"mlp": MLPConfig(hidden=(300, 100)), "lenet": LeNet5Config()}
CONFIG: MLPConfig | LeNet5Config = MODELS["mlp"]
LAM, BETA = 0.1, 2 / 3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def members(k: int) -> list[MemberSpec]:
    lams = np.geomspace(0.01, 1.0, k)
    return [MemberSpec(float(lams[i]), (0.5, 2 / 3)[i % 2], 1000 + i) for i in range(k)]


def run_resident(data: Dataset, device: torch.device) -> float:
    """Seconds of one epoch of one train_model trial on ``data``."""
    result = train_model(
        CONFIG,
        lam=LAM,
        beta=BETA,
        seed=0,
        settings=TrainSettings(epochs=1),
        data=data,
        device=device,
    )
    return result.history[0].seconds


def run_fused(k: int, noise: str) -> Callable[[Dataset, torch.device], float]:
    def run(data: Dataset, device: torch.device) -> float:
        results = train_fused(
            CONFIG,
            members(k),
            settings=TrainSettings(epochs=1),
            data=data,
            device=device,
            noise=noise,
        )
        return results[0].history[0].seconds / k  # seconds per trial-epoch

    return run


class PilMnist(torch.utils.data.Dataset):
    """torchvision.datasets.MNIST's item path: uint8 array → PIL image → transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        img = Image.fromarray(self.images[i], mode="L")
        return self.transform(img), int(self.labels[i])


def run_reference(data: Dataset, device: torch.device) -> float:
    """Seconds of one reference-style epoch (per-item PIL DataLoader, batch 100)."""
    to_u8 = lambda x: (x.squeeze(1).cpu() * 255).round().to(torch.uint8).numpy()  # noqa: E731
    train = PilMnist(to_u8(data.x_train), data.y_train.cpu().numpy())
    test = PilMnist(to_u8(data.x_test), data.y_test.cpu().numpy())
    train_loader = torch.utils.data.DataLoader(train, batch_size=100, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test, batch_size=100, shuffle=False)
    torch.manual_seed(0)
    model = build_model(CONFIG, beta=BETA, lam=LAM, weight_decay=5e-4, n_train=60000)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sync(device)
    t0 = time.perf_counter()
    model.train()
    for x, y in train_loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y) + model.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.clamp_log_alpha_()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
    sync(device)
    return time.perf_counter() - t0


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = (
        f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return text + f", load average {load:.1f}"


def compare_vmap(device: torch.device, k: int, steps: int = 20) -> None:
    """Dense 784-300-100-10 stack, forward + backward + Adam: hand-stacked bmm vs vmap."""
    from torch import nn
    from torch.func import functional_call, grad, stack_module_state, vmap

    base = nn.Sequential(
        nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    ).to(device)
    copies = [
        nn.Sequential(
            nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
        ).to(device)
        for _ in range(k)
    ]
    params, _ = stack_module_state(copies)  # type: ignore[arg-type]
    x = torch.rand(k, 100, 784, device=device)
    y = torch.randint(0, 10, (k, 100), device=device)

    def loss_one(p: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(base, p, (xb,)), yb)

    vgrad = vmap(grad(loss_one))
    tensors = [t.detach().clone().requires_grad_(True) for t in params.values()]
    names = list(params)
    opt_v = torch.optim.Adam(tensors)

    def step_vmap() -> None:
        grads = vgrad(dict(zip(names, tensors, strict=True)), x, y)
        for t, n in zip(tensors, names, strict=True):
            t.grad = grads[n]
        opt_v.step()

    ws = [t.detach().clone().requires_grad_(True) for t in params.values()]
    opt_b = torch.optim.Adam(ws)

    def step_bmm() -> None:
        h = x
        for i in range(0, 6, 2):
            h = torch.baddbmm(ws[i + 1][:, None, :], h, ws[i].transpose(1, 2))
            if i < 4:
                h = torch.relu(h)
        loss = F.cross_entropy(h.flatten(0, 1), y.flatten(), reduction="none")
        opt_b.zero_grad(set_to_none=True)
        loss.view(k, -1).mean(1).sum().backward()
        opt_b.step()

    for name, fn in (("torch.func vmap(grad)", step_vmap), ("stacked bmm + autograd", step_bmm)):
        for _ in range(3):
            fn()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        print(f"  {name:24s} K={k}: {(time.perf_counter() - t0) / steps * 1e3:8.2f} ms/step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ks", default="4,16,64", help="pack sizes, comma-separated")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=60.0,
        help="seconds one measurement may take; epochs are cut to a fraction to fit",
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument("--model", default="mlp", choices=sorted(MODELS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--noise", default="member", choices=("member", "pack"))
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--compare-vmap", action="store_true")
    args = parser.parse_args()
    global CONFIG
    CONFIG = MODELS[args.model]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ks = [int(k) for k in args.ks.split(",") if k]

    data = load_dataset("mnist", device=device)
    print(f"machine: {machine(device)}")
    print(f"data: MNIST {data.n_train} train / {data.x_test.shape[0]} test on {device}")
    print(f"model: {CONFIG}")
    if args.compare_vmap:
        for k in (16,) if device.type == "cpu" else (16, 128):
            compare_vmap(device, k)

    configs: dict[str, tuple[Callable[[Dataset, torch.device], float], int]] = {
        "resident (train_model)": (run_resident, 1)
    }
    if not args.no_reference:
        configs["reference-style DataLoader"] = (run_reference, 1)
    for k in ks:
        configs[f"fused K={k} ({args.noise} noise)"] = (run_fused(k, args.noise), k)

    # Probe: 1 % of an epoch (after a warm-up call) estimates the full epoch time.
    fractions: dict[str, float] = {}
    for name, (run, k) in configs.items():
        probe = fraction_of(data, 0.01, 100)
        run(probe, device)
        per_trial = run(probe, device) / 0.01
        per_run = per_trial * k  # a pack's epoch runs all its members
        f = min(1.0, args.time_budget / per_run)
        fractions[name] = max(0.01, f)
        print(f"probe {name:32s}: ~{per_run:7.1f} s per full epoch -> fraction {f:.3f}")

    rates: dict[str, list[float]] = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, (run, _k) in configs.items():
            f = fractions[name]
            seconds_per_trial_epoch = run(fraction_of(data, f, 100), device) / f
            rates[name].append(1.0 / seconds_per_trial_epoch)
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(
                f"round {r + 1} {name:32s}: {rates[name][-1]:8.3f} trial-epochs/s"
                f"  (load {load:.1f})"
            )

    median = {name: statistics.median(v) for name, v in rates.items()}
    resident = median["resident (train_model)"]
    reference = median.get("reference-style DataLoader")
    print()
    print(f"machine: {machine(device)}")
    print(
        f"{'configuration':34s} {'fraction':>8s} {'trial-epochs/s':>15s} "
        f"{'vs resident':>12s} {'vs reference':>13s}"
    )
    for name in configs:
        vs_ref = f"{median[name] / reference:12.2f}x" if reference else f"{'-':>13s}"
        print(
            f"{name:34s} {fractions[name]:8.3f} {median[name]:15.3f} "
            f"{median[name] / resident:11.2f}x {vs_ref}"
        )
    print(f"auto_pack_size (rule): {auto_pack_size(CONFIG, device)}")
    measured = auto_pack_size(CONFIG, device, measure_speed=True, candidates=ks)
    print(f"auto_pack_size (measured over {ks}): {measured}")


if __name__ == "__main__":
    main()
