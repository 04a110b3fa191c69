"""compact(): pruned units physically removed, outputs equal to the gated test-time model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from l0models import (
    L0MLP,
    L0LeNet5,
    L0WideResNet,
    LeNet5Config,
    MLPConfig,
    WRNConfig,
    compact,
    count_flops,
    count_params,
)
from l0models.base import L0Model
from l0models.compaction import ConstantMaps
from l0models.layers import L0Conv2d, L0Linear


def _randomise_gates(model: L0Model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.l0_layers():
            # About a third of the gates closed, the rest scaled somewhere in (0, 1].
            layer.log_alpha.copy_(torch.empty(layer.log_alpha.shape).uniform_(-4.6, 3, generator=g))


def _check(model: L0Model, x: torch.Tensor) -> nn.Module:
    model.eval()
    c = compact(model)
    assert not any(isinstance(m, (L0Linear, L0Conv2d)) for m in c.modules())
    diff = (model(x) - c(x)).abs().max().item()
    assert diff < 1e-5
    params, flops = model.cost(model.architecture())
    assert count_params(c) == params
    assert count_flops(c, model.input_shape) == flops
    dense_params, _ = model.cost(model.dense_counts())
    assert params < dense_params  # something was really removed
    return c


def test_mlp_compaction_matches() -> None:
    torch.manual_seed(0)
    model = L0MLP(MLPConfig(hidden=(300, 100)))
    _randomise_gates(model, 1)
    c = _check(model, torch.rand(64, 1, 28, 28))
    linears = [m for m in c.modules() if isinstance(m, nn.Linear)]
    assert [lin.in_features for lin in linears] == model.architecture()


def test_lenet5_compaction_matches() -> None:
    torch.manual_seed(0)
    model = L0LeNet5(LeNet5Config())
    _randomise_gates(model, 2)
    c = _check(model, torch.rand(32, 1, 28, 28))
    convs = [m for m in c.modules() if isinstance(m, nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == model.architecture()[:2]


def _trained_bn_stats(model: L0WideResNet) -> None:
    # Non-trivial batch-norm statistics and affine parameters, as after training.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 3, 32, 32))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def test_small_wrn_compaction_matches() -> None:
    torch.manual_seed(0)
    model = L0WideResNet(WRNConfig(depth=10, width=2))
    _trained_bn_stats(model)
    _randomise_gates(model, 3)
    _check(model, torch.rand(8, 3, 32, 32))


def test_wrn_block_with_every_map_pruned_keeps_its_shortcut() -> None:
    torch.manual_seed(0)
    model = L0WideResNet(WRNConfig(depth=16, width=1))
    _trained_bn_stats(model)
    _randomise_gates(model, 4)
    with torch.no_grad():
        model.l0_layers()[1].log_alpha.fill_(-6.0)  # an identity-shortcut block, all closed
    assert model.architecture()[1] == 0
    _check(model, torch.rand(4, 3, 32, 32))


def _check_degenerate(model: L0Model, x: torch.Tensor) -> None:
    """Like _check, for models pruned so far that nothing may be left to remove."""
    model.eval()
    c = compact(model)
    assert (model(x) - c(x)).abs().max().item() < 1e-5
    params, flops = model.cost(model.architecture())
    assert count_params(c) == params
    assert count_flops(c, model.input_shape) == flops
    scripted = torch.jit.script(c)
    assert torch.equal(scripted(x), c(x))


# Which LeNet-5 layers (conv1, conv2, fc1, fc2) have every gate closed.
@pytest.mark.parametrize("closed", [(0,), (1,), (2,), (3,), (0, 3), (0, 1, 2, 3)])
def test_lenet5_with_whole_layers_pruned_compacts_and_measures(closed: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = L0LeNet5(LeNet5Config())
    _randomise_gates(model, 5)
    with torch.no_grad():
        for i in closed:
            model.l0_layers()[i].log_alpha.fill_(-10.0)
    for i in closed:
        assert model.architecture()[i] == 0
    _check_degenerate(model, torch.rand(8, 1, 28, 28))
    if closed == (0,):
        # conv2 still has its (gated) bias: the constant maps reach fc1.
        assert any(isinstance(m, ConstantMaps) for m in compact(model).modules())


@pytest.mark.parametrize("closed", [(0,), (1,), (2,), (0, 1, 2)])
def test_mlp_with_whole_layers_pruned_compacts_and_measures(closed: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = L0MLP(MLPConfig(hidden=(30, 10)))
    _randomise_gates(model, 6)
    with torch.no_grad():
        for i in closed:
            model.l0_layers()[i].log_alpha.fill_(-10.0)
    _check_degenerate(model, torch.rand(8, 1, 28, 28))


@pytest.mark.parametrize("bad", ["not a model", nn.Linear(2, 2)])
def test_compact_rejects_non_l0_models(bad: object) -> None:
    with pytest.raises(TypeError, match="L0 model"):
        compact(bad)  # type: ignore[arg-type]
