"""``L0LeNet5``: LeNet-5-Caffe (20-50-800-500) with L0 gates on conv maps and fc inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l0models.base import Count, L0Model, check_droprates, per_layer_droprates
from l0models.compaction import (
    ConstantMaps,
    NoFeatures,
    SelectFeatures,
    compact_conv,
    compact_linear,
)
from l0models.gates import GateConfig
from l0models.layers import L0Conv2d, L0Linear

__all__ = ["L0LeNet5", "LeNet5Config"]

KERNEL = 5


@dataclass(frozen=True)
class LeNet5Config:
    channels: tuple[int, int] = (20, 50)
    fc_hidden: int = 500
    in_channels: int = 1
    num_classes: int = 10
    droprate_init: float | tuple[float, ...] = 0.5  # one for all or one per gated layer (4)
    input_size: int = 28

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        check_droprates(self, 4)
        if len(self.channels) != 2 or min(self.channels) <= 0:
            raise ValueError(
                f"LeNet5Config.channels must be two positive ints, got {self.channels}"
            )
        if self.spatial_sizes()[1] <= 0:
            raise ValueError(f"LeNet5Config.input_size {self.input_size} is too small")

    def spatial_sizes(self) -> tuple[int, int, int]:
        """(conv1 output, conv2 output, pooled conv2 output) side lengths: 24, 8, 4 for 28."""
        c1 = self.input_size - KERNEL + 1
        c2 = c1 // 2 - KERNEL + 1
        return c1, c2, c2 // 2

    def droprates(self) -> list[float]:
        """conv1, conv2, fc1, fc2."""
        return per_layer_droprates(self.droprate_init, 4)


class L0LeNet5(L0Model):
    """conv(5×5)→ReLU→maxpool(2)→conv(5×5)→ReLU→maxpool(2)→fc→ReLU→fc.

    Gated groups: conv1 maps, conv2 maps, fc1 inputs (C₂·4·4 = 800), fc2 inputs (500).
    State-dict keys: ``conv1.*``, ``conv2.*``, ``fc1.*``, ``fc2.*`` (weight, bias, log_alpha).
    """

    def __init__(
        self,
        config: LeNet5Config | None = None,
        gate: GateConfig | None = None,
        *,
        lam: float = 0.0,
        weight_decay: float = 0.0,
        n_train: int = 60000,
        local_rep: bool = False,
    ) -> None:
        gate = gate or GateConfig()
        super().__init__(
            gate, lam=lam, weight_decay=weight_decay, n_train=n_train, local_rep=local_rep
        )
        self.config = config = config or LeNet5Config()
        self.input_shape = (config.in_channels, config.input_size, config.input_size)
        c1, c2 = config.channels
        self.pooled = config.spatial_sizes()[2]
        common = dict(
            gate=gate,
            lam=lam,
            weight_decay=weight_decay,
            n_train=n_train,
            local_rep=local_rep,
        )
        p1, p2, p3, p4 = config.droprates()
        self.conv1 = L0Conv2d(config.in_channels, c1, KERNEL, droprate_init=p1, **common)  # type: ignore[arg-type]
        self.conv2 = L0Conv2d(c1, c2, KERNEL, droprate_init=p2, **common)  # type: ignore[arg-type]
        self.fc1 = L0Linear(c2 * self.pooled**2, config.fc_hidden, droprate_init=p3, **common)  # type: ignore[arg-type]
        self.fc2 = L0Linear(config.fc_hidden, config.num_classes, droprate_init=p4, **common)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, num_classes)
        self.check_input(x)
        h = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = F.max_pool2d(torch.relu(self.conv2(h)), 2)
        h = torch.relu(self.fc1(h.flatten(1)))
        return self.fc2(h)

    def _map_of_fc1_input(self) -> Tensor:
        per_map = self.pooled**2
        return torch.arange(self.fc1.in_features, device=self.fc1.weight.device) // per_map

    def kept_masks(self) -> list[Tensor]:
        # fc1 input i comes from conv2 map i // 16: it survives only if that map does, and a
        # conv2 map none of whose fc1 inputs survive is removed as well.
        m1, m2, m3, m4 = (
            layer.kept_mask() for layer in (self.conv1, self.conv2, self.fc1, self.fc2)
        )
        source = self._map_of_fc1_input()
        m3 = m3 & m2[source]
        m2 = m2 & m3.view(self.conv2.out_channels, -1).any(1)
        m1 = m1 & m2.any()  # with no conv2 map left, conv1's maps feed nothing
        return [m1, m2, m3, m4]

    def expected_counts(self) -> list[Tensor]:
        p1, p2, p3, p4 = (
            layer.prob_nonzero() for layer in (self.conv1, self.conv2, self.fc1, self.fc2)
        )
        source = self._map_of_fc1_input()
        # Independent gates: E[#maps kept] = Σ_c P(map c) · P(some fc1 input of c kept).
        any_input = 1 - (1 - p3).view(self.conv2.out_channels, -1).prod(1)
        return [p1.sum(), (p2 * any_input).sum(), (p3 * p2[source]).sum(), p4.sum()]

    def cost(self, counts: Sequence[Count]) -> tuple[Count, Count]:
        c1, c2, k3, k4 = counts
        cin, ncls = self.config.in_channels, self.config.num_classes
        s1, s2, _ = self.config.spatial_sizes()
        kk = KERNEL * KERNEL
        params = (kk * cin * c1 + c1) + (kk * c1 * c2 + c2) + (k3 * k4 + k4) + (k4 * ncls + ncls)
        flops = (
            (2 * kk * cin + 1) * c1 * s1 * s1
            + (2 * kk * c1 + 1) * c2 * s2 * s2
            + (2 * k3 * k4 + k4)
            + (2 * k4 * ncls + ncls)
        )
        return params, flops

    @torch.no_grad()
    def compact(self) -> nn.Module:
        m1, m2, m3, m4 = self.kept_masks()
        per_map = self.pooled**2
        features: list[nn.Module]
        if not bool(m2.any()):
            # No conv2 map reaches fc1 (kept_masks removed the maps without kept inputs), so
            # fc1 sees no inputs at all: its output is its bias.
            features = [NoFeatures()]
        else:
            if bool(m1.any()):
                convs: list[nn.Module] = [
                    compact_conv(self.conv1, None, m1),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                    compact_conv(self.conv2, m1, m2),
                ]
            else:
                # Every conv1 map is pruned: conv2 sees zeros and outputs its gated bias.
                _, s2, _ = self.config.spatial_sizes()
                bias = (
                    self.conv2.bias
                    if self.conv2.bias is not None
                    else self.conv2.weight.new_zeros(self.conv2.out_channels)
                )
                convs = [ConstantMaps((bias * self.conv2.test_gate())[m2], s2, s2)]
            # Positions of the kept fc1 inputs inside the flattened kept conv2 maps.
            index = torch.nonzero(m3.view(-1, per_map)[m2].flatten()).flatten()
            features = [
                *convs,
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                SelectFeatures(index, int(m2.sum()) * per_map),
            ]
        fc1 = compact_linear(self.fc1, m3, m4)
        fc2 = compact_linear(self.fc2, m4, None)
        return nn.Sequential(*features, fc1, nn.ReLU(), fc2).eval()
