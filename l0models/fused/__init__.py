"""Fused training: K configurations (λ, β, seed) of one architecture trained as one batched
model whose members reproduce their single ``train_model`` runs.

Modules: ``layers`` (stacked L0 layers and their autograd functions), ``models`` (the fused
MLP / LeNet-5), ``noise`` (each member's gate-noise stream), ``trainer`` (``train_fused``;
members stopped early leave the pack), ``state`` (its resumable ``FusedState``),
``sizing`` (``auto_pack_size``: how many members to fuse).
"""

from l0models.fused.layers import StackedL0Conv2d, StackedL0Layer, StackedL0Linear
from l0models.fused.models import FusedL0Model, FusedLeNet5, FusedMLP, is_fusable
from l0models.fused.noise import NOISE_MODES, GateNoise
from l0models.fused.sizing import auto_pack_size
from l0models.fused.trainer import FusedState, MemberSpec, fused_train_step, train_fused

__all__ = [
    "NOISE_MODES",
    "FusedL0Model",
    "FusedLeNet5",
    "FusedMLP",
    "FusedState",
    "GateNoise",
    "MemberSpec",
    "StackedL0Conv2d",
    "StackedL0Layer",
    "StackedL0Linear",
    "auto_pack_size",
    "fused_train_step",
    "is_fusable",
    "train_fused",
]
