"""Compaction: the plain dense modules a trained L0 model turns into, and ``compact()``.

The compacted modules use only torch building blocks and small TorchScript-able helpers
defined here, so a scripted file loads without l0sweep installed. (No postponed annotations
in this module: TorchScript has to resolve them.)
"""

import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from l0models.layers import L0Conv2d, L0Linear

if TYPE_CHECKING:
    from l0models.base import L0Model

__all__ = [
    "CompactResidualBlock",
    "ConstantMaps",
    "NoFeatures",
    "Normalize",
    "SelectFeatures",
    "compact",
    "compact_conv",
    "compact_linear",
]


class SelectFeatures(nn.Module):
    """Keeps the listed features of a flat (N, F) input: drops inputs whose gate is closed."""

    index: Tensor

    def __init__(self, index: Tensor, in_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.register_buffer("index", index.to(torch.long).clone())

    def forward(self, x: Tensor) -> Tensor:  # (N, F) -> (N, K)
        return x.index_select(1, self.index)

    def extra_repr(self) -> str:
        return f"{self.index.numel()} of {self.in_features}"


class ConstantMaps(nn.Module):
    """What a conv layer computes when every input map is pruned: its (gated) bias, the same
    at every position. ``bias`` is (C,); the output is (N, C, height, width)."""

    def __init__(self, bias: Tensor, height: int, width: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(bias.detach().clone())
        self.height = height
        self.width = width

    def forward(self, x: Tensor) -> Tensor:  # (N, ...) -> (N, C, height, width)
        c = self.bias.shape[0]
        return self.bias.view(1, c, 1, 1).expand(x.shape[0], c, self.height, self.width)

    def extra_repr(self) -> str:
        return f"{self.bias.shape[0]} maps of {self.height}x{self.width}"


class NoFeatures(nn.Module):
    """A feature extractor with every output pruned: (N, ...) -> an empty (N, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.new_zeros((x.shape[0], 0))


class Normalize(nn.Module):
    """(x − mean) / std per channel; lives inside the model so it takes raw [0, 1] pixels."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W)
        return (x - self.mean) / self.std


class CompactResidualBlock(nn.Module):
    """Pre-activation wide-ResNet block with its gated maps removed.

    ``pre`` = BN + ReLU on the input; ``branch`` = conv → BN → ReLU → conv on the kept maps
    (absent when every map is pruned); ``shortcut`` = 1×1 conv of the activated input or the
    identity of the raw input.
    """

    def __init__(
        self,
        pre: nn.Module,
        branch: nn.Module,
        shortcut: nn.Module,
        *,
        has_branch: bool,
        equal_in_out: bool,
    ) -> None:
        super().__init__()
        self.pre = pre
        self.branch = branch
        self.shortcut = shortcut
        self.has_branch = has_branch
        self.equal_in_out = equal_in_out

    def forward(self, x: Tensor) -> Tensor:
        o = self.pre(x)
        out = x if self.equal_in_out else self.shortcut(o)
        if self.has_branch:
            out = out + self.branch(o)
        return out


def compact(model: "L0Model") -> nn.Module:
    """A plain dense ``nn.Module`` equal to ``model``'s deterministic test-time forward pass,
    with every pruned unit physically removed (and the inputs it fed in the next layer)."""
    compact_fn = getattr(model, "compact", None)
    if compact_fn is None:
        raise TypeError(
            "compact() needs an L0 model (L0MLP, L0LeNet5, L0WideResNet), "
            f"got {type(model).__name__}"
        )
    return compact_fn()


@torch.no_grad()
def compact_conv(layer: L0Conv2d, m_in: Tensor | None, m_out: Tensor) -> nn.Conv2d:
    """The kept maps (``m_out``) of a gated conv, restricted to the kept input maps
    (``m_in``, None for all), with ẑ folded into filters and bias."""
    z = layer.test_gate()
    weight = (layer.weight * z[:, None, None, None])[m_out]
    if m_in is not None:
        weight = weight[:, m_in]
    conv = nn.Conv2d(
        weight.shape[1],
        weight.shape[0],
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        bias=layer.bias is not None,
    )
    conv.weight = nn.Parameter(weight.detach().clone().contiguous())
    if layer.bias is not None:
        conv.bias = nn.Parameter((layer.bias * z)[m_out].detach().clone())
    return conv


@torch.no_grad()
def compact_linear(layer: L0Linear, m_in: Tensor, m_out: Tensor | None) -> nn.Linear:
    """The kept inputs (and outputs) of a gated linear layer with ẑ folded into the columns."""
    weight = (layer.weight * layer.test_gate()[None, :])[:, m_in]
    bias: Tensor | None = layer.bias
    if m_out is not None:
        weight = weight[m_out]
        bias = None if bias is None else bias[m_out]
    with warnings.catch_warnings():  # a layer with every input pruned has a 0-wide weight
        warnings.filterwarnings("ignore", "Initializing zero-element tensors")
        lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    lin.weight = nn.Parameter(weight.detach().clone().contiguous())
    if bias is not None:
        lin.bias = nn.Parameter(bias.detach().clone())
    return lin
