"""``L0Model``: what every L0 model offers the trainer, the measures and the fused engine."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from l0models.gates import GateConfig
from l0models.layers import L0Layer, check_penalty_args, layers_penalty

__all__ = ["L0Model", "check_droprates", "per_layer_droprates"]

Count = float | Tensor


def per_layer_droprates(droprate: float | Sequence[float], n_layers: int) -> list[float]:
    """A drop rate per gated layer from one value for all or one value each."""
    if isinstance(droprate, (int, float)):
        return [float(droprate)] * n_layers
    return [float(p) for p in droprate]


def check_droprates(config: object, n_layers: int) -> None:
    """Frozen configs keep a per-layer ``droprate_init`` as a tuple of ``n_layers`` values."""
    value = getattr(config, "droprate_init")  # noqa: B009
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise ValueError(
                f"droprate_init needs one value per gated layer ({n_layers}), got {len(value)}"
            )
        object.__setattr__(config, "droprate_init", tuple(float(p) for p in value))


class L0Model(nn.Module):
    """Base class of the L0 models.

    Subclasses build their layers, list their gated layers in order (``l0_layers``), and
    define the cost of the compacted architecture from the kept-unit counts (``cost``), the
    effective test-time masks (``kept_masks``), the expected counts (``expected_counts``) and
    ``compact()``.
    """

    input_shape: tuple[int, ...]

    def __init__(
        self, gate: GateConfig, *, lam: float, weight_decay: float, n_train: int, local_rep: bool
    ) -> None:
        super().__init__()
        check_penalty_args(lam, weight_decay, n_train)
        self.gate = gate
        self.lam = float(lam)
        self.weight_decay = float(weight_decay)
        self.n_train = int(n_train)
        self.local_rep = bool(local_rep)

    # ---- gates ---------------------------------------------------------------------------
    def l0_layers(self) -> list[L0Layer]:
        """The gated layers in forward order."""
        # Cached: the module tree is fixed once built, and walking it every step costs.
        cached = self.__dict__.get("_l0_layers_cache")
        if cached is None:
            cached = [m for m in self.modules() if isinstance(m, L0Layer)]
            self.__dict__["_l0_layers_cache"] = cached
        return list(cached)

    def _ungated_parameters(self) -> list[nn.Parameter]:
        cached = self.__dict__.get("_ungated_cache")
        if cached is None:
            gated = {id(p) for layer in self.l0_layers() for p in layer.parameters()}
            cached = [p for p in self.parameters() if id(p) not in gated]
            self.__dict__["_ungated_cache"] = cached
        return list(cached)

    def set_noise_generator(self, generator: torch.Generator | None) -> None:
        """Source of the gates' training noise (None: torch's global generator)."""
        for layer in self.l0_layers():
            layer.generator = generator

    def clamp_log_alpha_(self) -> None:
        """Clamp every log α to [ln 0.01, ln 100]; call after each optimiser step."""
        for layer in self.l0_layers():
            layer.clamp_()

    def scale_lambdas_(self, scales: Sequence[float]) -> None:
        """L0-sep: λ_l = λ·scales[l] for the gated layers in order (one positive scale each)."""
        layers = self.l0_layers()
        if len(scales) != len(layers):
            raise ValueError(
                f"lambda_scales needs one value per gated layer ({len(layers)}), got {len(scales)}"
            )
        if not all(math.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"lambda_scales must be positive, got {list(scales)}")
        for layer, scale in zip(layers, scales, strict=True):
            layer.lam = self.lam * float(scale)

    def penalty(self) -> Tensor:
        """DESIGN §3: expected L0 + L2 over gate groups, plus ½·wd·θ² on ungated parameters."""
        total = layers_penalty(self.l0_layers())
        ungated = self._ungated_parameters()
        if self.weight_decay > 0 and ungated:
            l2 = sum(torch.dot(p.flatten(), p.flatten()) for p in ungated)
            total = total + 0.5 * self.weight_decay * l2
        return total

    # ---- architecture and cost -----------------------------------------------------------
    def kept_masks(self) -> list[Tensor]:
        """Per gated layer, a bool mask of the units the compacted model keeps."""
        raise NotImplementedError

    def expected_counts(self) -> list[Tensor]:
        """Per gated layer, the expected number of kept units under P(z ≠ 0)."""
        raise NotImplementedError

    def cost(self, counts: Sequence[Count]) -> tuple[Count, Count]:
        """(params, flops) of the compacted architecture with ``counts`` kept units per layer."""
        raise NotImplementedError

    def dense_counts(self) -> list[int]:
        return [int(m.numel()) for m in self.kept_masks()]

    def architecture(self) -> list[int]:
        """Kept units per gated layer under the test-time gates, e.g. ``[219, 214, 100]``."""
        return [int(m.sum()) for m in self.kept_masks()]

    @torch.no_grad()
    def expected_l0(self) -> float:
        """Expected parameter count of the compacted model under the gates' P(z ≠ 0)."""
        return float(self.cost(self.expected_counts())[0])

    @torch.no_grad()
    def expected_flops(self) -> float:
        """Expected forward FLOPs per example under the gates' P(z ≠ 0)."""
        return float(self.cost(self.expected_counts())[1])

    def compact(self) -> nn.Module:
        raise NotImplementedError

    def check_input(self, x: Tensor) -> None:
        expected = self.input_shape
        if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != tuple(expected):
            dims = ", ".join(map(str, expected))
            raise ValueError(
                f"{type(self).__name__} expects input of shape (N, {dims}), got {tuple(x.shape)}"
            )
