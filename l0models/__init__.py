"""L0-regularised sparse networks (Louizos, Welling & Kingma, ICLR 2018).

Gates, L0 layers, the MLP / LeNet-5 / wide-ResNet models, their measures, compaction to a
plain dense module, export, datasets and the training loop.
"""

from l0models.base import L0Model
from l0models.compaction import compact
from l0models.datasets import DATASET_NAMES, Dataset, load_dataset, synthetic_dataset
from l0models.export import compact_model_bytes, export_compact_model, load_compact_model
from l0models.fused import FusedState, MemberSpec, auto_pack_size, is_fusable, train_fused
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
from l0models.measures import Measures, count_flops, count_params, evaluate_accuracy, measure
from l0models.mlp import L0MLP, MLPConfig
from l0models.models import ModelConfig, build_model
from l0models.training import EpochRecord, TrainResult, TrainSettings, TrainState, train_model
from l0models.wrn import L0WideResNet, WRNConfig

__all__ = [
    "DATASET_NAMES",
    "L0MLP",
    "Dataset",
    "EpochRecord",
    "FusedState",
    "GateConfig",
    "L0Conv2d",
    "L0Layer",
    "L0LeNet5",
    "L0Linear",
    "L0Model",
    "L0WideResNet",
    "LeNet5Config",
    "MLPConfig",
    "Measures",
    "MemberSpec",
    "ModelConfig",
    "TrainResult",
    "TrainSettings",
    "TrainState",
    "WRNConfig",
    "auto_pack_size",
    "build_model",
    "clamp_log_alpha_",
    "compact",
    "compact_model_bytes",
    "count_flops",
    "count_params",
    "evaluate_accuracy",
    "export_compact_model",
    "hard_concrete",
    "init_log_alpha_",
    "is_fusable",
    "load_compact_model",
    "load_dataset",
    "logistic_noise",
    "measure",
    "prob_nonzero",
    "sample_gate",
    "synthetic_dataset",
    "test_time_gate",
    "train_fused",
    "train_model",
]
