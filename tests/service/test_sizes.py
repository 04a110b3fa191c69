"""service.sizes counts a model's parameters and FLOPs without torch: the same numbers as
l0models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from l0models import (
    L0Layer,
    LeNet5Config,
    MLPConfig,
    WRNConfig,
    build_model,
    compact,
    count_flops,
    count_params,
)
from service.sizes import (
    DATASET_SHAPES,
    ModelSize,
    lenet5_params,
    lenet5_size,
    mlp_params,
    mlp_size,
    wrn_params,
    wrn_size,
)
from service.spec import SweepSpec
from service.vocabulary import ARCH_DATASETS, Architecture, Dataset


def _l0models_dense_params(config: object) -> int:
    model = build_model(config, beta=2 / 3, lam=0.1, weight_decay=0.0, n_train=1000)
    return int(model.cost(model.dense_counts())[0])  # what a trial reports as params_dense


@pytest.mark.parametrize(
    ("in_features", "hidden", "classes"),
    [(784, (300, 100), 10), (784, (7,), 10), (3072, (50, 40, 30), 100)],
)
def test_mlp(in_features: int, hidden: tuple[int, ...], classes: int) -> None:
    config = MLPConfig(hidden=hidden, in_features=in_features, num_classes=classes)
    assert mlp_params(in_features, hidden, classes) == _l0models_dense_params(config)


@pytest.mark.parametrize(("channels", "size", "classes"), [(1, 28, 10), (3, 32, 100)])
def test_lenet5(channels: int, size: int, classes: int) -> None:
    config = LeNet5Config(in_channels=channels, input_size=size, num_classes=classes)
    assert lenet5_params(channels, size, classes) == _l0models_dense_params(config)
    if (channels, size, classes) == (1, 28, 10):
        assert lenet5_params(1, 28, 10) == 431_080  # LeNet-5-Caffe 20-50-800-500


@pytest.mark.parametrize(("depth", "width", "classes"), [(10, 1, 10), (16, 2, 100), (22, 3, 10)])
def test_wrn(depth: int, width: int, classes: int) -> None:
    config = WRNConfig(depth=depth, width=width, num_classes=classes)
    assert wrn_params(depth, width, 3, classes) == _l0models_dense_params(config)


def test_wrn_28_10_is_the_known_size() -> None:
    assert wrn_params(28, 10, 3, 10) == pytest.approx(36.5e6, rel=0.01)


def test_dataset_shapes_fit_the_architectures_they_are_paired_with() -> None:
    from l0models import load_dataset

    assert DATASET_SHAPES[Dataset.SYNTHETIC] == (*load_dataset("synthetic").input_shape, 10)
    for dataset in ARCH_DATASETS[Architecture.WRN]:
        assert DATASET_SHAPES[dataset][:3] == (3, 32, 32)  # WRNConfig's input


# ---------------------------------------------------------------- FLOPs and the smallest model


def _keep_first_unit(model: Any) -> None:
    """Close every gate but the first of each gated layer (test-time gates, DESIGN §3)."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, L0Layer):
                layer.log_alpha.fill_(-10.0)  # ẑ = 0: pruned
                layer.log_alpha[0] = 10.0  # ẑ = 1: kept


SIZED: list[tuple[Any, Callable[[list[int] | None], ModelSize]]] = [
    (MLPConfig(hidden=(300, 100)), lambda kept: mlp_size(784, (300, 100), 10, kept)),
    (
        MLPConfig(hidden=(7,), in_features=3072, num_classes=100),
        lambda kept: mlp_size(3072, (7,), 100, kept),
    ),
    (LeNet5Config(), lambda kept: lenet5_size(1, 28, 10, kept)),
    (
        LeNet5Config(in_channels=3, input_size=32, num_classes=100),
        lambda kept: lenet5_size(3, 32, 100, kept),
    ),
    (WRNConfig(depth=10, width=1), lambda kept: wrn_size(10, 1, 3, 10, kept)),
    (
        WRNConfig(depth=16, width=2, num_classes=100),
        lambda kept: wrn_size(16, 2, 3, 100, kept),
    ),
]


@pytest.mark.parametrize("smallest", [False, True], ids=["dense", "smallest"])
@pytest.mark.parametrize(("config", "size"), SIZED)
def test_sizes_are_what_l0models_measures(
    config: Any, size: Callable[[list[int] | None], ModelSize], smallest: bool
) -> None:
    """params and FLOPs as l0models.measures counts them on the compacted model: dense, and
    with the gates keeping exactly one unit / feature / map of each gated layer."""
    model = build_model(config, beta=2 / 3, lam=0.1, weight_decay=0.0, n_train=1000)
    kept = None
    if smallest:
        _keep_first_unit(model)
        kept = model.architecture()
        assert kept == [1] * len(kept)
    compacted = compact(model)
    measured = (count_params(compacted), count_flops(compacted, model.input_shape))
    assert measured == tuple(size(kept))


def test_the_smallest_model_of_a_spec() -> None:
    spec = SweepSpec.model_validate(
        {"model": {"arch": "mlp", "hidden": [300, 100]}, "dataset": "mnist", "lambdas": [0.1]}
    )
    # DESIGN §4 with k0 = k1 = k2 = 1: flops 2(1 + 1 + 10) + 1 + 1 + 10, params 1+1+1+1+10+10
    assert spec.model_size(smallest=True) == (24, 36)
    dense_flops = 2 * (784 * 300 + 300 * 100 + 100 * 10) + 300 + 100 + 10
    assert spec.model_size() == (spec.dense_params(), dense_flops)
