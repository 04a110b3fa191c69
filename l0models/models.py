"""``build_model``: one entry point from a frozen config to its L0 model."""

from __future__ import annotations

from collections.abc import Sequence

from l0models.base import L0Model
from l0models.gates import GateConfig
from l0models.lenet import L0LeNet5, LeNet5Config
from l0models.mlp import L0MLP, MLPConfig
from l0models.wrn import L0WideResNet, WRNConfig

__all__ = ["ModelConfig", "build_model"]

ModelConfig = MLPConfig | LeNet5Config | WRNConfig


def build_model(
    config: ModelConfig,
    *,
    beta: float = 2.0 / 3.0,
    lam: float = 0.0,
    weight_decay: float = 0.0,
    n_train: int = 60000,
    local_rep: bool = False,
    gamma: float = -0.1,
    zeta: float = 1.1,
    lambda_scales: Sequence[float] | None = None,
) -> L0Model:
    """The L0 model of ``config`` with gate temperature ``beta`` and penalty λ (per weight,
    divided by ``n_train`` inside), L2 ``weight_decay``; ``lambda_scales`` (one per gated
    layer) makes layer l's strength λ·scale_l. Raises ValueError on β ≤ 0, λ < 0, scales of
    the wrong length."""
    gate = GateConfig(beta=beta, gamma=gamma, zeta=zeta)
    kwargs = dict(lam=lam, weight_decay=weight_decay, n_train=n_train, local_rep=local_rep)
    model: L0Model
    if isinstance(config, MLPConfig):
        model = L0MLP(config, gate, **kwargs)  # type: ignore[arg-type]
    elif isinstance(config, LeNet5Config):
        model = L0LeNet5(config, gate, **kwargs)  # type: ignore[arg-type]
    elif isinstance(config, WRNConfig):
        model = L0WideResNet(config, gate, **kwargs)  # type: ignore[arg-type]
    else:
        raise TypeError(
            "build_model needs an MLPConfig, LeNet5Config or WRNConfig, "
            f"got {type(config).__name__}"
        )
    if lambda_scales is not None:
        model.scale_lambdas_(lambda_scales)
    return model
