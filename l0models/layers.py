"""L0-gated layers: ``L0Linear`` gates input neurons, ``L0Conv2d`` gates output feature maps.

Both carry the combined L0 + L2 penalty of DESIGN §3: for each gate group g,
P(z_g ≠ 0) · Σ_{j∈g} (½·wd·θ_j² + λ/N). Parameters outside every group (a linear layer's
bias) get the plain ½·wd·θ² with a positive sign.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l0models.gates import (
    GateConfig,
    clamp_log_alpha_,
    gate_from_noise_,
    init_log_alpha_,
    prob_nonzero,
    sample_gate,
    test_time_gate,
)

__all__ = ["L0Conv2d", "L0Layer", "L0Linear", "check_penalty_args", "layers_penalty"]


def check_penalty_args(lam: float, weight_decay: float, n_train: int) -> None:
    """Raise ValueError for λ < 0, weight decay < 0 or a non-positive training-set size."""
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lambda (L0 strength) must be a finite number >= 0, got {lam!r}")
    if not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if n_train <= 0:
        raise ValueError(f"n_train (training-set size N) must be > 0, got {n_train!r}")


class L0Layer(nn.Module):
    """Shared gate state of the L0 layers: ``log_alpha`` (one per group) and the penalty knobs.

    Training noise (plain attributes, not state): ``noise``, the logistic noise of the next
    training forward, which the trainers set every step from their counter-based stream
    (``l0models.noise``) and the forward consumes; without it, ``generator`` (or torch's
    global generator) draws the sample.
    """

    log_alpha: nn.Parameter

    def __init__(
        self,
        n_groups: int,
        *,
        droprate_init: float,
        gate: GateConfig,
        lam: float,
        weight_decay: float,
        n_train: int,
        local_rep: bool,
    ) -> None:
        super().__init__()
        check_penalty_args(lam, weight_decay, n_train)
        self.gate = gate
        self.lam = float(lam)
        self.weight_decay = float(weight_decay)
        self.n_train = int(n_train)
        self.local_rep = bool(local_rep)
        self.droprate_init = float(droprate_init)
        self.generator: torch.Generator | None = None
        self.noise: Tensor | None = None
        self.log_alpha = nn.Parameter(torch.empty(n_groups))
        init_log_alpha_(self.log_alpha, droprate_init)

    def prob_nonzero(self) -> Tensor:
        """P(z ≠ 0) per group, shape (G,)."""
        g = self.gate
        return prob_nonzero(self.log_alpha, g.beta, g.gamma, g.zeta)

    def test_gate(self) -> Tensor:
        """Deterministic test-time gate (Eq. 13) per group, shape (G,)."""
        return test_time_gate(self.log_alpha, self.gate.gamma, self.gate.zeta)

    def kept_mask(self) -> Tensor:
        """Groups whose test-time gate is non-zero, bool (G,)."""
        return self.test_gate().detach() > 0

    def noise_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of one training forward's noise: (G,), or (batch, G) per example."""
        groups = self.log_alpha.shape[0]
        return (batch, groups) if self.local_rep else (groups,)

    def gate_values(self, batch_size: int) -> Tensor:
        """Training: a hard-concrete sample, (G,) per minibatch or (B, G) per example, from
        ``noise`` when the trainer set it (consumed), else drawn. Eval: the test-time gate."""
        if not self.training:
            return self.test_gate()
        noise, self.noise = self.noise, None
        if noise is not None:
            if noise.shape != self.noise_shape(batch_size):
                raise ValueError(f"gate noise of shape {tuple(noise.shape)} for this batch")
            return gate_from_noise_(self.log_alpha, noise, self.gate)
        batch = batch_size if self.local_rep else None
        return sample_gate(self.log_alpha, self.gate, batch=batch, generator=self.generator)

    def clamp_(self) -> None:
        clamp_log_alpha_(self.log_alpha)

    def group_costs(self) -> Tensor:
        """Σ_{j∈g} (½·wd·θ_j² + λ/N) per group, shape (G,)."""
        raise NotImplementedError

    def ungrouped_l2(self) -> Tensor:
        """½·wd·θ² of parameters outside every gate group."""
        return self.log_alpha.new_zeros(())

    def penalty_reference(self) -> Tensor:
        """The penalty written out with autograd ops: the specification ``penalty`` matches."""
        return (self.prob_nonzero() * self.group_costs()).sum() + self.ungrouped_l2()

    def penalty(self) -> Tensor:
        """Expected L0 + L2 penalty of DESIGN §3 for this layer (a scalar), with hand-written
        gradients: a few kernels instead of the dozens autograd would run per step."""
        return layers_penalty([self])

    def _penalty_spec(self) -> tuple[float, float, float, bool]:
        g = self.gate
        shift = g.beta * math.log(-g.gamma / g.zeta)
        return shift, self.weight_decay, self.lam / self.n_train, isinstance(self, L0Conv2d)


def layers_penalty(layers: Sequence[L0Layer]) -> Tensor:
    """Σ over ``layers`` of their penalties, as one autograd node."""
    specs = tuple(layer._penalty_spec() for layer in layers)
    tensors: list[Tensor | None] = []
    for layer in layers:
        tensors += [layer.log_alpha, layer.weight, layer.bias]  # type: ignore[list-item]
    return _LayersPenalty.apply(specs, *tensors)


class _LayersPenalty(torch.autograd.Function):
    """Σ_layers Σ_g P_g·Σ_{j∈g}(½·wd·θ_j² + λ/N), plus ½·wd·Σb² for a linear layer's
    ungrouped bias.

    Groups: columns of a linear weight (out, in); output maps of a conv weight (out, ...)
    together with their bias. Inputs: per layer (log α, weight, bias or None).
    """

    @staticmethod
    def forward(
        ctx: Any, specs: tuple[tuple[float, float, float, bool], ...], *tensors: Tensor | None
    ) -> Tensor:
        saved: list[Tensor | None] = []
        total: Tensor | None = None
        for k, (shift, weight_decay, lam_over_n, conv) in enumerate(specs):
            log_alpha, weight, bias = tensors[3 * k : 3 * k + 3]
            assert log_alpha is not None and weight is not None
            p = torch.sigmoid(log_alpha - shift)  # P(z ≠ 0), (G,)
            size = weight[0].numel() + (bias is not None) if conv else weight.shape[0]
            cost = torch.full_like(p, size * lam_over_n)
            if weight_decay > 0:
                sq = (weight * weight).flatten(1).sum(1) if conv else (weight * weight).sum(0)
                if conv and bias is not None:
                    sq = sq.addcmul_(bias, bias)
                cost = cost.add_(sq, alpha=0.5 * weight_decay)
                if not conv and bias is not None:
                    term = torch.dot(bias, bias).mul_(0.5 * weight_decay)
                    total = term if total is None else total.add_(term)
            term = torch.dot(p, cost)
            total = term if total is None else total.add_(term)
            saved += [p, cost, weight, bias]
        ctx.save_for_backward(*saved)
        ctx.specs = specs
        assert total is not None
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        grads: list[Tensor | None] = [None]  # for specs
        for k, (_, wd, _, conv) in enumerate(ctx.specs):
            p, cost, weight, bias = saved[4 * k : 4 * k + 4]
            grads.append(torch.addcmul(p, p, p, value=-1.0).mul_(cost).mul_(grad))
            grad_weight = grad_bias = None
            if wd > 0:
                coef = p * (grad * wd)  # d/dθ of P_g·½·wd·θ² = wd·P_g·θ
                if conv:
                    grad_weight = weight * coef.view(-1, *([1] * (weight.dim() - 1)))
                    grad_bias = None if bias is None else bias * coef
                else:
                    grad_weight = weight * coef
                    grad_bias = None if bias is None else bias * (grad * wd)
            grads += [grad_weight, grad_bias]
        return tuple(grads)


class L0Linear(L0Layer):
    """Fully-connected layer whose input neurons are gated: y = (x ⊙ z) Wᵀ + b."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        droprate_init: float = 0.5,
        gate: GateConfig | None = None,
        lam: float = 0.0,
        weight_decay: float = 0.0,
        n_train: int = 60000,
        local_rep: bool = False,
    ) -> None:
        super().__init__(
            in_features,
            droprate_init=droprate_init,
            gate=gate or GateConfig(),
            lam=lam,
            weight_decay=weight_decay,
            n_train=n_train,
            local_rep=local_rep,
        )
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        # std √(2 / in_features), as the reference initialises its (in, out) weight matrix.
        nn.init.kaiming_normal_(self.weight, mode="fan_in")

    def group_costs(self) -> Tensor:
        # Group j = column j of W (every weight leaving input neuron j).
        l2 = 0.5 * self.weight_decay * self.weight.pow(2).sum(0)
        return l2 + self.out_features * self.lam / self.n_train

    def ungrouped_l2(self) -> Tensor:
        if self.bias is None:
            return self.weight.new_zeros(())
        return 0.5 * self.weight_decay * self.bias.pow(2).sum()

    def forward(self, x: Tensor) -> Tensor:  # (B, in) -> (B, out)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"L0Linear expects input of shape (N, {self.in_features}), got {tuple(x.shape)}"
            )
        z = self.gate_values(x.shape[0])  # (in,) or (B, in)
        if z.dim() == 1 and z.requires_grad and not x.requires_grad and x.dim() == 2:
            # First layer: autograd would run the input-gradient matmul only to reach z.
            return _InputGatedLinear.apply(x, z, self.weight, self.bias)
        return F.linear(x * z, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, beta={self.gate.beta:.4g}, lam={self.lam:g}, "
            f"local_rep={self.local_rep}"
        )


class _InputGatedLinear(torch.autograd.Function):
    """y = (x ⊙ z) Wᵀ + b for an input x that needs no gradient, one gate vector z (in,).

    With A = gᵀx (the weight-gradient matmul a dense layer runs anyway): ∂W = A ⊙ z (column
    scaling, in place) and ∂z_i = Σ_o A_oi·W_oi. No input-gradient matmul, no (out, in)
    temporaries.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, z: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, z, weight)
        ctx.has_bias = bias is not None
        xz = x * z  # (B, in)
        if bias is None:
            return xz @ weight.t()
        return torch.addmm(bias, xz, weight.t())

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, z, weight = ctx.saved_tensors
        a = grad.t() @ x  # (out, in)
        grad_z = torch.linalg.vecdot(a, weight, dim=0) if ctx.needs_input_grad[1] else None
        grad_weight = a.mul_(z) if ctx.needs_input_grad[2] else None
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return None, grad_z, grad_weight, grad_bias


class L0Conv2d(L0Layer):
    """2-D convolution whose output feature maps are gated: y = z ⊙ (W ∗ x + b).

    The bias belongs to its map's group: it is trained, gated and penalised with it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        droprate_init: float = 0.5,
        gate: GateConfig | None = None,
        lam: float = 0.0,
        weight_decay: float = 0.0,
        n_train: int = 60000,
        local_rep: bool = False,
    ) -> None:
        super().__init__(
            out_channels,
            droprate_init=droprate_init,
            gate=gate or GateConfig(),
            lam=lam,
            weight_decay=weight_decay,
            n_train=n_train,
            local_rep=local_rep,
        )
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (kh, kw)
        self.stride: tuple[int, int] = (stride, stride) if isinstance(stride, int) else stride
        self.padding: tuple[int, int] = (padding, padding) if isinstance(padding, int) else padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_in")

    def group_costs(self) -> Tensor:
        # Group c = output map c: its filter weights and its bias.
        per_map = self.weight.pow(2).flatten(1).sum(1)  # (C_out,)
        size = self.weight[0].numel()
        if self.bias is not None:
            per_map = per_map + self.bias.pow(2)
            size += 1
        return 0.5 * self.weight_decay * per_map + size * self.lam / self.n_train

    def conv(self, x: Tensor) -> Tensor:
        """The ungated convolution (W ∗ x + b)."""
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def forward(self, x: Tensor) -> Tensor:  # (B, C_in, H, W) -> (B, C_out, H', W')
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"L0Conv2d expects input of shape (N, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        z = self.gate_values(x.shape[0])
        if z.dim() == 1:
            # One gate per map for the whole batch: scaling the filters is cheaper than the maps.
            bias = None if self.bias is None else self.bias * z
            return F.conv2d(
                x, self.weight * z[:, None, None, None], bias, self.stride, self.padding
            )
        return self.conv(x) * z[:, :, None, None]

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, "
            f"beta={self.gate.beta:.4g}, lam={self.lam:g}, local_rep={self.local_rep}"
        )
