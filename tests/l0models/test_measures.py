"""FLOPs and params by hand (DESIGN §4), with and without closed gates, and expectations."""

from __future__ import annotations

import math

import pytest
import torch

from l0models import (
    L0MLP,
    L0LeNet5,
    LeNet5Config,
    MLPConfig,
    compact,
    count_flops,
    count_params,
    measure,
    synthetic_dataset,
)
from l0models.base import L0Model

OPEN, CLOSED = 6.0, -6.0  # log α whose test-time gate is 1 and 0


def _set_gates(model: L0Model, closed: list[list[int]]) -> None:
    with torch.no_grad():
        for layer, idx in zip(model.l0_layers(), closed, strict=True):
            layer.log_alpha.fill_(OPEN)
            layer.log_alpha[idx] = CLOSED


def test_dense_mlp_784_300_100_by_hand() -> None:
    model = L0MLP(MLPConfig(hidden=(300, 100)))
    # Linear n→m: 2nm + m FLOPs, nm + m params.
    flops = (2 * 784 * 300 + 300) + (2 * 300 * 100 + 100) + (2 * 100 * 10 + 10)
    params = (784 * 300 + 300) + (300 * 100 + 100) + (100 * 10 + 10)
    assert (flops, params) == (532_810, 266_610)
    assert model.cost(model.dense_counts()) == (params, flops)
    _set_gates(model, [[], [], []])
    c = compact(model)
    assert count_flops(c, (1, 28, 28)) == flops
    assert count_params(c) == params


def test_dense_lenet5_caffe_by_hand() -> None:
    model = L0LeNet5(LeNet5Config())
    # conv1 1→20, 5×5, 28→24: (2·25·1 + 1)·20·24·24; conv2 20→50, 12→8: (2·25·20 + 1)·50·8·8;
    # fc1 800→500; fc2 500→10.
    conv1 = (2 * 25 * 1 + 1) * 20 * 24 * 24
    conv2 = (2 * 25 * 20 + 1) * 50 * 8 * 8
    fc1 = 2 * 800 * 500 + 500
    fc2 = 2 * 500 * 10 + 10
    flops = conv1 + conv2 + fc1 + fc2
    params = (25 * 20 + 20) + (25 * 20 * 50 + 50) + (800 * 500 + 500) + (500 * 10 + 10)
    assert (conv1, conv2, flops, params) == (587_520, 3_203_200, 4_601_230, 431_080)
    assert model.cost(model.dense_counts()) == (params, flops)
    _set_gates(model, [[], [], [], []])
    c = compact(model)
    assert count_flops(c, (1, 28, 28)) == flops
    assert count_params(c) == params


def test_mlp_with_closed_gates_counts_the_smaller_architecture() -> None:
    model = L0MLP(MLPConfig(hidden=(300, 100)))
    # Keep 500 of 784 inputs, 120 of 300 hidden, 40 of 100 hidden.
    _set_gates(model, [list(range(284)), list(range(180)), list(range(60))])
    k0, k1, k2 = 500, 120, 40
    flops = 2 * (k0 * k1 + k1 * k2 + 10 * k2) + k1 + k2 + 10
    params = k0 * k1 + k1 + k1 * k2 + k2 + 10 * k2 + 10
    assert model.architecture() == [k0, k1, k2]
    assert model.cost(model.architecture()) == (params, flops)
    c = compact(model)
    assert count_flops(c, (1, 28, 28)) == flops == 2 * (60000 + 4800 + 400) + 170
    assert count_params(c) == params


def test_lenet5_with_closed_gates_counts_the_smaller_architecture() -> None:
    model = L0LeNet5()
    # conv1 closes maps 0..7 (12 kept); conv2 closes maps 0..19 (30 open); fc1 closes inputs
    # 480..799, i.e. every fc1 input of conv2 maps 30..49, so those maps are removed as well.
    closed_fc1 = list(range(480, 800))  # maps 30..49 lose every fc1 input
    _set_gates(model, [list(range(8)), list(range(20)), closed_fc1, list(range(300))])
    # conv2 maps kept: 20..29 (gate open and some fc1 input kept) = 10 maps;
    # fc1 inputs kept: those of maps 20..29 = 10·16 = 160; fc2 inputs kept: 200.
    c1, c2, k3, k4 = 12, 10, 160, 200
    assert model.architecture() == [c1, c2, k3, k4]
    flops = (
        (2 * 25 * 1 + 1) * c1 * 24 * 24
        + (2 * 25 * c1 + 1) * c2 * 8 * 8
        + (2 * k3 * k4 + k4)
        + (2 * k4 * 10 + 10)
    )
    params = (25 * c1 + c1) + (25 * c1 * c2 + c2) + (k3 * k4 + k4) + (k4 * 10 + 10)
    c = compact(model)
    assert count_flops(c, (1, 28, 28)) == flops
    assert count_params(c) == params
    assert model.cost(model.architecture()) == (params, flops)


def test_expected_l0_of_mlp_is_the_closed_form() -> None:
    torch.manual_seed(0)
    model = L0MLP(MLPConfig(hidden=(30, 20), in_features=50))
    with torch.no_grad():
        for layer in model.l0_layers():
            layer.log_alpha.uniform_(-3, 3)
    beta = model.gate.beta

    def e(layer_index: int) -> float:
        la = model.l0_layers()[layer_index].log_alpha.tolist()
        return sum(1 / (1 + math.exp(-(a - beta * math.log(0.1 / 1.1)))) for a in la)

    k0, k1, k2 = e(0), e(1), e(2)
    params = k0 * k1 + k1 + k1 * k2 + k2 + 10 * k2 + 10
    flops = 2 * (k0 * k1 + k1 * k2 + 10 * k2) + k1 + k2 + 10
    assert model.expected_l0() == pytest.approx(params, rel=1e-5)
    assert model.expected_flops() == pytest.approx(flops, rel=1e-5)


def test_measure_reports_design_quantities() -> None:
    model = L0MLP()
    _set_gates(model, [list(range(284)), list(range(180)), list(range(60))])
    data = synthetic_dataset(n_train=10, n_test=50)
    m = measure(model, data)
    assert m.params == 500 * 120 + 120 + 120 * 40 + 40 + 40 * 10 + 10
    assert m.params_dense == 266_610 and m.flops_dense == 532_810
    assert m.sparsity == pytest.approx(1 - m.params / 266_610)
    assert m.error == pytest.approx(1 - m.accuracy)
    assert m.architecture == [500, 120, 40]
    assert set(m.as_dict()) >= {"accuracy", "flops", "expected_flops", "expected_l0"}
