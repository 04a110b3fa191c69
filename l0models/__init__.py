"""L0-regularised sparse networks (Louizos, Welling & Kingma, ICLR 2018)."""

from l0models.base import L0Model
from l0models.compaction import compact
from l0models.gates import (
    GateConfig,
    clamp_log_alpha_,
    hard_concrete,
    init_log_alpha_,
    logistic_noise,
    prob_nonzero,
    sample_gate,
    test_time_gate,
)
from l0models.layers import L0Conv2d, L0Layer, L0Linear
from l0models.lenet import L0LeNet5, LeNet5Config
from l0models.mlp import L0MLP, MLPConfig
from l0models.models import ModelConfig, build_model
from l0models.wrn import L0WideResNet, WRNConfig

__all__ = [
    "L0MLP",
    "GateConfig",
    "L0Conv2d",
    "L0Layer",
    "L0LeNet5",
    "L0Linear",
    "L0Model",
    "L0WideResNet",
    "LeNet5Config",
    "MLPConfig",
    "ModelConfig",
    "WRNConfig",
    "build_model",
    "clamp_log_alpha_",
    "compact",
    "hard_concrete",
    "init_log_alpha_",
    "logistic_noise",
    "prob_nonzero",
    "sample_gate",
    "test_time_gate",
]
