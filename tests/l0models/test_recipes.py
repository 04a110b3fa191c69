"""The paper's recipe knobs: per-layer λ (L0-sep), per-layer initial drop rates, SGD with
Nesterov momentum and LR milestones, per-member weight decay in fused packs, and each
CIFAR normalised with its own statistics."""

from __future__ import annotations

import math

import pytest
import torch

from l0models import (
    LeNet5Config,
    MLPConfig,
    TrainSettings,
    WRNConfig,
    build_model,
    synthetic_dataset,
    train_model,
)
from l0models.fused import MemberSpec, train_fused
from l0models.optim import build_optimizer, lr_milestones
from l0models.training import init_model
from l0models.wrn import CIFAR10_MEAN, CIFAR100_MEAN, CIFAR100_STD, channel_stats


@pytest.mark.parametrize(
    ("config", "scales"),
    [
        (MLPConfig(hidden=(30, 20)), (10.0, 0.5, 2.0)),
        (LeNet5Config(channels=(4, 6), fc_hidden=16), (100.0, 5.0, 1.0, 100.0)),
    ],
)
def test_lambda_scales_penalty_is_the_sum_of_per_layer_penalties(config, scales) -> None:
    lam, wd = 0.1, 5e-4
    torch.manual_seed(0)
    scaled = build_model(config, lam=lam, weight_decay=wd, n_train=1000, lambda_scales=scales)
    total = torch.zeros((), dtype=torch.float64)
    for i, scale in enumerate(scales):
        torch.manual_seed(0)  # the same weights, λ·scale everywhere: take layer i's penalty
        plain = build_model(config, lam=lam * scale, weight_decay=wd, n_train=1000)
        total += plain.l0_layers()[i].penalty_reference().double()
    assert [layer.lam for layer in scaled.l0_layers()] == pytest.approx([lam * s for s in scales])
    assert scaled.penalty().double().item() == pytest.approx(total.item(), rel=1e-5)
    with pytest.raises(ValueError, match="one value per gated layer"):
        build_model(config, lam=lam, lambda_scales=scales[:-1])
    with pytest.raises(ValueError, match="positive"):
        build_model(config, lam=lam, lambda_scales=(0.0, *scales[1:]))


def _droprate_of(layer) -> float:
    # log α ~ N(log(1 − p) − log p, 0.01²): p = σ(−mean).
    return 1.0 / (1.0 + math.exp(layer.log_alpha.mean().item()))


@pytest.mark.parametrize(
    ("config", "setting", "want"),
    [
        (MLPConfig(hidden=(30, 20)), None, [0.2, 0.5, 0.5]),  # the reference's defaults
        (MLPConfig(hidden=(30, 20)), 0.3, [0.3, 0.3, 0.3]),  # a float: every gated layer
        (MLPConfig(hidden=(30, 20)), (0.1, 0.2, 0.4), [0.1, 0.2, 0.4]),  # one per layer
        (LeNet5Config(channels=(4, 6), fc_hidden=16), None, [0.5] * 4),
        (LeNet5Config(channels=(4, 6), fc_hidden=16), [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]),
        (WRNConfig(depth=10, width=1), None, [0.3] * 3),
        (WRNConfig(depth=10, width=1), [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]),
    ],
)
def test_droprate_init_null_float_and_list(config, setting, want) -> None:
    settings = TrainSettings(epochs=1, droprate_init=setting)
    model = init_model(config, lam=0.1, beta=0.5, seed=0, settings=settings, n_train=100)
    assert [_droprate_of(layer) for layer in model.l0_layers()] == pytest.approx(want, abs=0.01)


def test_droprate_list_of_the_wrong_length_is_refused() -> None:
    settings = TrainSettings(epochs=1, droprate_init=(0.2, 0.5))
    with pytest.raises(ValueError, match=r"one value per gated layer \(3\), got 2"):
        init_model(MLPConfig(), lam=0.1, beta=0.5, seed=0, settings=settings, n_train=100)


@pytest.mark.filterwarnings("ignore:Detected call of")  # epochs stepped without training
def test_sgd_nesterov_and_milestones() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(params, TrainSettings(epochs=200, optimizer="sgd", lr=0.1))
    group = sgd.optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (0.9, True)
    assert sgd.scheduler is not None
    # null milestones keep what a spec without them always meant: 30/60/80 % of the epochs.
    assert sorted(sgd.scheduler.milestones) == lr_milestones(200) == [60, 120, 160]
    wrn = TrainSettings(
        epochs=200, optimizer="sgd", lr=0.1, momentum=0.8, nesterov=False, lr_milestones=[60, 120]
    )
    opt = build_optimizer(params, wrn)
    assert (
        opt.optimizer.param_groups[0]["momentum"],
        opt.optimizer.param_groups[0]["nesterov"],
    ) == (
        0.8,
        False,
    )
    lrs = []
    for _ in range(130):
        lrs.append(opt.optimizer.param_groups[0]["lr"])
        opt.end_epoch()
    assert lrs[59] == pytest.approx(0.1) and lrs[60] == pytest.approx(0.02)
    assert lrs[120] == pytest.approx(0.004)
    # Adam: constant unless milestones are given.
    assert build_optimizer(params, TrainSettings(epochs=10)).scheduler is None
    adam = build_optimizer(params, TrainSettings(epochs=10, lr_milestones=(5,), lr_gamma=0.5))
    assert adam.scheduler is not None and adam.scheduler.gamma == 0.5
    with pytest.raises(ValueError, match="nesterov"):
        TrainSettings(epochs=1, optimizer="sgd", momentum=0.0)


def test_fused_members_with_own_scales_and_weight_decay_equal_single_runs() -> None:
    data = synthetic_dataset(n_train=300, n_test=100)
    settings = TrainSettings(epochs=2, batch_size=50, weight_decay=5e-4)
    config = MLPConfig(hidden=(32, 16))
    members = [
        MemberSpec(0.1, 2 / 3, 3),
        MemberSpec(0.1, 2 / 3, 3, weight_decay=0.0),
        MemberSpec(0.1, 2 / 3, 3, lambda_scales=(10.0, 0.5, 2.0)),
        MemberSpec(0.5, 0.5, 4, weight_decay=1e-2, lambda_scales=(1.0, 5.0, 1.0)),
    ]
    fused = train_fused(config, members, settings=settings, data=data)
    expected_l0 = set()
    for spec, got in zip(members, fused, strict=True):
        want = train_model(
            config,
            lam=spec.lam,
            beta=spec.beta,
            seed=spec.seed,
            settings=spec.settings(settings),
            data=data,
        )
        for name, w in want.model.state_dict().items():
            g = got.model.state_dict()[name]
            assert torch.allclose(g, w, atol=1e-4, rtol=1e-3), (spec, name)
        for rg, rw in zip(got.history, want.history, strict=True):
            assert rg.loss == pytest.approx(rw.loss, rel=1e-4), spec
        assert got.measures.architecture == want.measures.architecture
        assert got.measures.expected_l0 == pytest.approx(want.measures.expected_l0, rel=1e-4)
        expected_l0.add(round(got.measures.expected_l0, 3))
    assert len(expected_l0) == len(members)  # the same λ/β/seed, yet four different runs


def test_each_cifar_has_its_own_normalisation() -> None:
    assert channel_stats("cifar10")[0] == CIFAR10_MEAN
    assert channel_stats("cifar100") == (CIFAR100_MEAN, CIFAR100_STD)
