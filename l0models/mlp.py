"""``L0MLP``: a fully-connected network with L0 gates on every layer's input neurons."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from l0models.base import Count, L0Model, check_droprates, per_layer_droprates
from l0models.compaction import SelectFeatures, compact_linear
from l0models.gates import GateConfig
from l0models.layers import L0Linear

__all__ = ["L0MLP", "MLPConfig"]


@dataclass(frozen=True)
class MLPConfig:
    """784-300-100-10 by default. ``droprate_init``: None = the reference's 0.2 for the input
    layer and 0.5 for every later one; a float for every gated layer; or one per gated layer
    (len(hidden) + 1)."""

    hidden: tuple[int, ...] = (300, 100)
    in_features: int = 784
    num_classes: int = 10
    droprate_init: float | tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if any(h <= 0 for h in self.hidden) or self.in_features <= 0 or self.num_classes <= 0:
            raise ValueError(f"MLP widths must be positive, got {self}")
        check_droprates(self, len(self.hidden) + 1)

    def droprates(self) -> list[float]:
        n = len(self.hidden) + 1
        if self.droprate_init is None:
            return [INPUT_DROPRATE] + [HIDDEN_DROPRATE] * (n - 1)
        return per_layer_droprates(self.droprate_init, n)


INPUT_DROPRATE, HIDDEN_DROPRATE = 0.2, 0.5  # the reference MLP's initial drop rates


class L0MLP(L0Model):
    """in_features → hidden… → num_classes, ReLU between layers, input neurons gated.

    Takes (N, in_features) or any (N, C, H, W) with C·H·W = in_features (flattened inside).
    State-dict keys: ``layers.{i}.weight`` (out, in), ``layers.{i}.bias`` (out,),
    ``layers.{i}.log_alpha`` (in,).
    """

    def __init__(
        self,
        config: MLPConfig | None = None,
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
        self.config = config = config or MLPConfig()
        self.input_shape = (config.in_features,)
        dims = [config.in_features, *config.hidden, config.num_classes]
        self.layers = nn.ModuleList(
            L0Linear(
                d_in,
                d_out,
                droprate_init=p,
                gate=gate,
                lam=lam,
                weight_decay=weight_decay,
                n_train=n_train,
                local_rep=local_rep,
            )
            for d_in, d_out, p in zip(dims[:-1], dims[1:], config.droprates(), strict=True)
        )

    def check_input(self, x: Tensor) -> None:
        if x.dim() < 2 or x[0].numel() != self.config.in_features:
            raise ValueError(
                f"L0MLP expects input of shape (N, {self.config.in_features}) or (N, C, H, W)"
                f" with C·H·W = {self.config.in_features}, got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:  # (N, ...) -> (N, num_classes)
        self.check_input(x)
        h = x.reshape(x.shape[0], -1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < last:
                h = torch.relu(h)
        return h

    def linears(self) -> list[L0Linear]:
        return [layer for layer in self.layers if isinstance(layer, L0Linear)]

    def kept_masks(self) -> list[Tensor]:
        return [layer.kept_mask() for layer in self.linears()]

    def expected_counts(self) -> list[Tensor]:
        return [layer.prob_nonzero().sum() for layer in self.linears()]

    def cost(self, counts: Sequence[Count]) -> tuple[Count, Count]:
        # Layer i maps counts[i] kept inputs to counts[i + 1] kept outputs (the next layer's
        # kept inputs); the last layer has num_classes outputs.
        ks = [*counts, self.config.num_classes]
        params: Count = 0.0
        flops: Count = 0.0
        for k_in, k_out in itertools.pairwise(ks):
            params = params + k_in * k_out + k_out
            flops = flops + 2 * k_in * k_out + k_out
        return params, flops

    @torch.no_grad()
    def compact(self) -> nn.Module:
        masks = self.kept_masks()
        out_masks = [*masks[1:], None]
        modules: list[nn.Module] = [nn.Flatten()]
        modules.append(SelectFeatures(torch.nonzero(masks[0]).flatten(), self.config.in_features))
        for i, (layer, m_in, m_out) in enumerate(
            zip(self.linears(), masks, out_masks, strict=True)
        ):
            modules.append(compact_linear(layer, m_in, m_out))
            if i < len(self.layers) - 1:
                modules.append(nn.ReLU())
        return nn.Sequential(*modules).eval()
