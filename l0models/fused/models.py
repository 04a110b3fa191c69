"""Fused L0 models: K members of one architecture (MLP or LeNet-5) as one module, built from
the stacked layers of ``l0models.fused.layers`` (the fused trainer's model).

Parameters keep the single model's names and order with a leading member dimension K, so
member k is ``tensor[k]`` of every entry of the single model's state dict.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l0models.base import L0Model
from l0models.fused.layers import StackedL0Conv2d, StackedL0Layer, StackedL0Linear
from l0models.lenet import L0LeNet5, LeNet5Config
from l0models.mlp import L0MLP, MLPConfig
from l0models.models import ModelConfig

__all__ = ["FusedL0Model", "FusedLeNet5", "FusedMLP", "is_fusable"]


def is_fusable(config: ModelConfig) -> bool:
    """MLPs and LeNet-5 can be fused; wide ResNets train one at a time (K = 1)."""
    return isinstance(config, (MLPConfig, LeNet5Config))


class FusedL0Model(nn.Module):
    """K members of one L0 architecture. ``forward(x, noises)`` maps (K, B, ...) inputs to
    (K, B, classes) logits; ``noises`` is one tensor per gated layer, or None at test time."""

    members: int
    single_type: type[L0Model]

    def stacked_layers(self) -> list[StackedL0Layer]:
        return [m for m in self.modules() if isinstance(m, StackedL0Layer)]

    def forward(self, x: Tensor, noises: Sequence[Tensor] | None = None) -> Tensor:
        raise NotImplementedError

    def forward_train(self, x: Tensor, noises: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Training forward: logits (K, B, classes) and each member's penalty (K,)."""
        raise NotImplementedError

    def forward_shared(self, x: Tensor) -> Tensor:
        """Test-time logits (K, B, classes) of every member on one shared batch (B, ...)."""
        return self(x.unsqueeze(0).expand(self.members, *x.shape))

    def penalty(self) -> Tensor:  # (K,)
        return torch.stack([m.penalty() for m in self.stacked_layers()]).sum(0)

    def clamp_log_alpha_(self) -> None:
        for layer in self.stacked_layers():
            layer.clamp_()

    def noise_shapes(self, batch: int) -> list[tuple[int, ...]]:
        """Per member, the noise shapes one training step draws, in the single model's order."""
        return [m.noise_shape(batch) for m in self.stacked_layers()]

    @torch.no_grad()
    def copy_member_to_(self, k: int, model: L0Model) -> L0Model:
        """Write member ``k``'s parameters into the single model ``model`` (same names)."""
        params = dict(model.named_parameters())
        for name, p in self.named_parameters():
            params[name].copy_(p[k])
        return model

    @classmethod
    def from_models(cls, models: Sequence[L0Model]) -> FusedL0Model:
        """Stack single models of one architecture (``L0MLP`` or ``L0LeNet5``)."""
        first = models[0]
        if isinstance(first, L0MLP):
            return FusedMLP(models)  # type: ignore[arg-type]
        if isinstance(first, L0LeNet5):
            return FusedLeNet5(models)  # type: ignore[arg-type]
        raise TypeError(f"only L0MLP and L0LeNet5 members can be fused, got {type(first).__name__}")


def _check_same(models: Sequence[L0Model], config: MLPConfig | LeNet5Config) -> None:
    if not models:
        raise ValueError("a fused model needs at least one member")
    gates = {(m.gate.gamma, m.gate.zeta) for m in models}
    knobs = {(m.n_train, m.local_rep) for m in models}
    if len(gates) > 1 or len(knobs) > 1:
        raise ValueError("fused members must share gamma, zeta, N and noise mode")
    for m in models:
        if getattr(m, "config", None) != config:
            raise ValueError("fused members must share one architecture config")


class FusedMLP(FusedL0Model):
    single_type = L0MLP

    def __init__(self, models: Sequence[L0MLP]) -> None:
        super().__init__()
        self.config: MLPConfig = models[0].config
        _check_same(models, self.config)
        self.members = len(models)
        self.layers = nn.ModuleList(
            StackedL0Linear([m.layers[i] for m in models])  # type: ignore[misc]
            for i in range(len(models[0].layers))
        )

    def forward(self, x: Tensor, noises: Sequence[Tensor] | None = None) -> Tensor:
        h = x.reshape(x.shape[0], x.shape[1], -1)  # (K, B, in)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, None if noises is None else noises[i])
            if i < last:
                h = torch.relu(h)
        return h  # (K, B, classes)

    def forward_train(self, x: Tensor, noises: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        h = x.reshape(x.shape[0], x.shape[1], -1)
        last = len(self.layers) - 1
        penalty = h.new_zeros(self.members)
        for i, layer in enumerate(self.layers):
            assert isinstance(layer, StackedL0Linear)
            h, pen = layer.forward_train(h, noises[i])
            penalty = penalty + pen
            if i < last:
                h = torch.relu(h)
        return h, penalty


class FusedLeNet5(FusedL0Model):
    single_type = L0LeNet5

    def __init__(self, models: Sequence[L0LeNet5]) -> None:
        super().__init__()
        self.config: LeNet5Config = models[0].config
        _check_same(models, self.config)
        self.members = len(models)
        self.conv1 = StackedL0Conv2d([m.conv1 for m in models])
        self.conv2 = StackedL0Conv2d([m.conv2 for m in models])
        self.fc1 = StackedL0Linear([m.fc1 for m in models])
        self.fc2 = StackedL0Linear([m.fc2 for m in models])

    def forward(self, x: Tensor, noises: Sequence[Tensor] | None = None) -> Tensor:
        k, b = x.shape[:2]
        n1, n2, n3, n4 = [None] * 4 if noises is None else noises
        h = x.transpose(0, 1).reshape(b, -1, *x.shape[3:])  # (K, B, C, H, W) -> (B, K·C, H, W)
        h = F.max_pool2d(torch.relu(self.conv1(h, n1)), 2)
        h = F.max_pool2d(torch.relu(self.conv2(h, n2)), 2)  # (B, K·C2, 4, 4)
        h = h.reshape(b, k, -1).transpose(0, 1)  # (K, B, C2·16), single-model flatten order
        h = torch.relu(self.fc1(h, n3))
        return self.fc2(h, n4)

    def forward_train(self, x: Tensor, noises: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        return self(x, noises), self.penalty()
