"""``build_model``: one entry point from a frozen config to its L0 model."""

from __future__ import annotations

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
) -> L0Model:
    """The L0 model of ``config`` with gate temperature ``beta`` and penalty λ (per weight,
    divided by ``n_train`` inside), L2 ``weight_decay``. Raises ValueError on β ≤ 0, λ < 0."""
    gate = GateConfig(beta=beta, gamma=gamma, zeta=zeta)
    kwargs = dict(lam=lam, weight_decay=weight_decay, n_train=n_train, local_rep=local_rep)
    if isinstance(config, MLPConfig):
        return L0MLP(config, gate, **kwargs)  # type: ignore[arg-type]
    if isinstance(config, LeNet5Config):
        return L0LeNet5(config, gate, **kwargs)  # type: ignore[arg-type]
    if isinstance(config, WRNConfig):
        return L0WideResNet(config, gate, **kwargs)  # type: ignore[arg-type]
    raise TypeError(
        f"build_model needs an MLPConfig, LeNet5Config or WRNConfig, got {type(config).__name__}"
    )
