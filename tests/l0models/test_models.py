"""build_model and the model configs: construction, input checks, bad arguments."""

from __future__ import annotations

import pytest
import torch

from l0models import (
    L0MLP,
    L0LeNet5,
    L0WideResNet,
    LeNet5Config,
    MLPConfig,
    WRNConfig,
    build_model,
)


@pytest.mark.parametrize(
    ("config", "cls", "shape"),
    [
        (MLPConfig(hidden=(20, 10)), L0MLP, (2, 1, 28, 28)),
        (LeNet5Config(), L0LeNet5, (2, 1, 28, 28)),
        (WRNConfig(depth=10, width=1), L0WideResNet, (2, 3, 32, 32)),
    ],
)
def test_build_model_dispatches_and_runs(config: object, cls: type, shape: tuple[int, ...]) -> None:
    model = build_model(config, beta=0.5, lam=0.1, weight_decay=5e-4, n_train=1000)  # type: ignore[arg-type]
    assert isinstance(model, cls)
    assert all(layer.gate.beta == 0.5 for layer in model.l0_layers())
    assert all(layer.lam == 0.1 and layer.n_train == 1000 for layer in model.l0_layers())
    model.train()
    out = model(torch.rand(shape))
    assert out.shape == (2, 10)
    (out.sum() + model.penalty()).backward()


def test_mlp_droprate_init_first_layer_differs() -> None:
    model = L0MLP(MLPConfig())
    means = [layer.log_alpha.mean().item() for layer in model.l0_layers()]
    assert means[0] == pytest.approx(1.386, abs=0.01)  # log(0.8/0.2)
    assert means[1] == pytest.approx(0.0, abs=0.01) and means[2] == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize(
    ("model", "shape", "match"),
    [
        (L0MLP(), (4, 1, 28, 27), r"L0MLP expects .*784.*\(4, 1, 28, 27\)"),
        (L0LeNet5(), (4, 3, 28, 28), r"L0LeNet5 expects input of shape \(N, 1, 28, 28\)"),
        (L0LeNet5(), (1, 28, 28), r"got \(1, 28, 28\)"),
        (L0WideResNet(WRNConfig(depth=10, width=1)), (2, 3, 28, 28), r"\(N, 3, 32, 32\)"),
    ],
)
def test_wrong_input_shape_names_the_expected_shape(
    model: torch.nn.Module, shape: tuple[int, ...], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        model(torch.rand(shape))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="beta"):
        build_model(MLPConfig(), beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        build_model(MLPConfig(), beta=-1.0)
    with pytest.raises(ValueError, match="lambda"):
        build_model(LeNet5Config(), lam=-0.5)
    with pytest.raises(TypeError, match="MLPConfig"):
        build_model("mlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth"):
        WRNConfig(depth=12)


def test_configs_are_frozen() -> None:
    with pytest.raises(AttributeError):
        MLPConfig().hidden = (1,)  # type: ignore[misc]
