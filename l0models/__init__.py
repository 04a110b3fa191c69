"""L0-regularised sparse networks (Louizos, Welling & Kingma, ICLR 2018).

Gates, L0 layers, the MLP / LeNet-5 / wide-ResNet models, their measures, compaction to a
plain dense module, export, datasets and the training loop.
"""

from l0models.base import L0Model
from l0models.compaction import compact
from l0models.datasets import DATASET_NAMES, Dataset, load_dataset, synthetic_dataset
from l0models.export import (
    MODEL_FORMATS,
    ExportedFiles,
    compact_model_bytes,
    export_compact_model,
    export_model_files,
    export_program,
    load_compact_model,
    onnx_model_bytes,
    pt2_model_bytes,
)
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
    "MODEL_FORMATS",
    "Dataset",
    "EpochRecord",
    "ExportedFiles",
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
    "export_model_files",
    "export_program",
    "hard_concrete",
    "init_log_alpha_",
    "is_fusable",
    "load_compact_model",
    "load_dataset",
    "logistic_noise",
    "measure",
    "onnx_model_bytes",
    "prob_nonzero",
    "pt2_model_bytes",
    "sample_gate",
    "synthetic_dataset",
    "test_time_gate",
    "train_fused",
    "train_model",
]
