"""``L0WideResNet``: a pre-activation wide ResNet (Zagoruyko & Komodakis) with L0 gates on
the output maps of the first conv of each residual block.

Where the gate multiplies: after that conv's BN + ReLU, i.e. on the maps that feed the
block's second conv. Gating before BN (as the reference code does) lets batch
normalisation undo the gate in training, and a closed gate would still leave BN's shift
feeding the next conv, so pruned maps could not be removed exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l0models.base import Count, L0Model, check_droprates, per_layer_droprates
from l0models.compaction import CompactResidualBlock, Normalize
from l0models.gates import GateConfig
from l0models.layers import L0Conv2d

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "L0WideResNet",
    "WRNConfig",
    "channel_stats",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# Per-channel mean and std of CIFAR-100's training pixels (the same statistic as above).
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
_CHANNEL_STATS = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
}


def channel_stats(dataset: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) a WRN normalises ``dataset``'s raw [0, 1] pixels with: each CIFAR its own;
    CIFAR-10's for anything else (e.g. the synthetic set)."""
    return _CHANNEL_STATS.get(dataset, (CIFAR10_MEAN, CIFAR10_STD))


@dataclass(frozen=True)
class WRNConfig:
    """WRN-depth-width; depth = 6n + 4. ``mean``/``std`` normalise raw [0, 1] pixels inside."""

    depth: int = 28
    width: int = 10
    num_classes: int = 10
    droprate_init: float | tuple[float, ...] = 0.3  # one for all or one per residual block
    in_channels: int = 3
    input_size: int = 32
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD

    def __post_init__(self) -> None:
        if self.depth < 10 or (self.depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n + 4 with n >= 1, got {self.depth}")
        if self.width <= 0:
            raise ValueError(f"WRN width must be positive, got {self.width}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError("WRNConfig mean/std need one value per input channel")
        check_droprates(self, self.n_blocks)

    @property
    def blocks_per_group(self) -> int:
        return (self.depth - 4) // 6

    @property
    def n_blocks(self) -> int:
        """Residual blocks, one gated conv each: 3·(depth − 4)/6."""
        return 3 * self.blocks_per_group

    def droprates(self) -> list[float]:
        return per_layer_droprates(self.droprate_init, self.n_blocks)

    def stages(self) -> list[int]:
        return [16, 16 * self.width, 32 * self.width, 64 * self.width]


class L0BasicBlock(nn.Module):
    """x → BN → ReLU → o; branch: conv1(o) → BN → ReLU → ⊙z → conv2; + (x or 1×1 conv(o))."""

    def __init__(
        self, c_in: int, c_out: int, stride: int, gate: GateConfig, droprate: float, **penalty
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = L0Conv2d(
            c_in,
            c_out,
            3,
            stride=stride,
            padding=1,
            bias=False,
            droprate_init=droprate,
            gate=gate,
            **penalty,
        )
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.equal_in_out = c_in == c_out and stride == 1
        self.shortcut = (
            None if self.equal_in_out else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        o = F.relu(self.bn1(x))
        h = F.relu(self.bn2(self.conv1.conv(o)))
        z = self.conv1.gate_values(x.shape[0])  # (C,) or (B, C)
        h = self.conv2(h * z[..., None, None])
        skip = x if self.shortcut is None else self.shortcut(o)
        return skip + h


class L0WideResNet(L0Model):
    """WRN with one gated conv per block. State-dict keys: ``stem``, ``blocks.{i}.*``
    (``conv1.log_alpha`` holds the gates), ``bn``, ``fc``, buffers of ``normalize``."""

    def __init__(
        self,
        config: WRNConfig | None = None,
        gate: GateConfig | None = None,
        *,
        lam: float = 0.0,
        weight_decay: float = 0.0,
        n_train: int = 50000,
        local_rep: bool = False,
    ) -> None:
        gate = gate or GateConfig()
        super().__init__(
            gate, lam=lam, weight_decay=weight_decay, n_train=n_train, local_rep=local_rep
        )
        self.config = config = config or WRNConfig()
        self.input_shape = (config.in_channels, config.input_size, config.input_size)
        stages = config.stages()
        self.normalize = Normalize(config.mean, config.std)
        self.stem = nn.Conv2d(config.in_channels, stages[0], 3, padding=1, bias=False)
        penalty_kw = dict(lam=lam, weight_decay=weight_decay, n_train=n_train, local_rep=local_rep)
        blocks: list[L0BasicBlock] = []
        c_in = stages[0]
        droprates = iter(config.droprates())
        for g, c_out in enumerate(stages[1:]):
            for b in range(config.blocks_per_group):
                stride = 2 if (g > 0 and b == 0) else 1
                blocks.append(
                    L0BasicBlock(c_in, c_out, stride, gate, next(droprates), **penalty_kw)
                )
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.fc = nn.Linear(c_in, config.num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, L0Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:  # (N, 3, 32, 32) raw [0, 1] -> (N, classes)
        self.check_input(x)
        h = self.stem(self.normalize(x))
        for block in self.blocks:
            h = block(h)
        h = F.relu(self.bn(h))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    def _block_list(self) -> list[L0BasicBlock]:
        return [b for b in self.blocks if isinstance(b, L0BasicBlock)]

    def kept_masks(self) -> list[Tensor]:
        return [b.conv1.kept_mask() for b in self._block_list()]

    def expected_counts(self) -> list[Tensor]:
        return [b.conv1.prob_nonzero().sum() for b in self._block_list()]

    def cost(self, counts: Sequence[Count]) -> tuple[Count, Count]:
        cfg = self.config
        size = cfg.input_size
        c0 = self.stem.out_channels
        params: Count = 9 * cfg.in_channels * c0
        flops: Count = 2 * 9 * cfg.in_channels * c0 * size * size
        for block, k in zip(self._block_list(), counts, strict=True):
            size = (size + 2 - 3) // block.stride + 1
            hw = size * size
            params = params + 2 * block.c_in + 9 * block.c_in * k + 2 * k + 9 * k * block.c_out
            flops = flops + 2 * 9 * block.c_in * k * hw + 2 * 9 * k * block.c_out * hw
            if not block.equal_in_out:
                params = params + block.c_in * block.c_out
                flops = flops + 2 * block.c_in * block.c_out * hw
        c_last = self.fc.in_features
        params = params + 2 * c_last + c_last * cfg.num_classes + cfg.num_classes
        flops = flops + 2 * c_last * cfg.num_classes + cfg.num_classes
        return params, flops

    @torch.no_grad()
    def compact(self) -> nn.Module:
        blocks = [_compact_block(b) for b in self._block_list()]
        return (
            nn.Sequential(
                _copy_module(self.normalize),
                _copy_module(self.stem),
                *blocks,
                _copy_module(self.bn),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                _copy_module(self.fc),
            )
            .to(self.fc.weight.device)
            .eval()
        )


def _copy_module(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module)


def _compact_block(block: L0BasicBlock) -> CompactResidualBlock:
    keep = block.conv1.kept_mask()
    z = block.conv1.test_gate()[keep]
    k = int(keep.sum())
    pre = nn.Sequential(_copy_module(block.bn1), nn.ReLU())
    shortcut = nn.Identity() if block.shortcut is None else _copy_module(block.shortcut)
    if k == 0:  # every map pruned: the block is its shortcut alone
        return CompactResidualBlock(
            pre, nn.Sequential(), shortcut, has_branch=False, equal_in_out=block.equal_in_out
        ).eval()
    conv1 = nn.Conv2d(block.c_in, k, 3, stride=block.stride, padding=1, bias=False)
    conv1.weight.data = block.conv1.weight[keep].detach().clone()
    bn2 = nn.BatchNorm2d(k, eps=block.bn2.eps)
    # z·ReLU(BN(y)) = ReLU(z·BN(y)) for z ≥ 0: fold ẑ into BN's affine weight and bias.
    bn2.weight.data = (block.bn2.weight[keep] * z).detach().clone()
    bn2.bias.data = (block.bn2.bias[keep] * z).detach().clone()
    bn2.running_mean = block.bn2.running_mean[keep].clone()  # type: ignore[index]
    bn2.running_var = block.bn2.running_var[keep].clone()  # type: ignore[index]
    conv2 = nn.Conv2d(k, block.c_out, 3, padding=1, bias=False)
    conv2.weight.data = block.conv2.weight[:, keep].detach().clone()
    branch = nn.Sequential(conv1, bn2, nn.ReLU(), conv2)
    return CompactResidualBlock(
        pre, branch, shortcut, has_branch=True, equal_in_out=block.equal_in_out
    ).eval()
