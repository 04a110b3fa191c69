"""Stacked L0 layers: K members' copies of one L0 layer as one module.

Every parameter of a single model gains a leading member dimension K under the same name
(``layers.0.weight``: (out, in) → (K, out, in)), registered in the same order, so member k
of the stack is ``tensor[k]`` for every entry of the single model's state dict and of its
optimiser state. Linear layers run as one ``torch.baddbmm``; conv layers as one grouped
convolution (groups = K). Each member has its own β, λ and weight decay (buffers of shape
(K, 1)), so per-layer λ (L0-sep) and weight-decay arms can share a pack.

The gates' noise is passed in (one tensor per gated layer) instead of drawn inside, so the
trainer can reproduce each member's own single-model noise stream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l0models.gates import clamp_log_alpha_
from l0models.gates import test_time_gate as _test_time_gate
from l0models.layers import L0Conv2d, L0Layer, L0Linear

__all__ = ["StackedL0Conv2d", "StackedL0Layer", "StackedL0Linear"]


class _StackedHardConcrete(torch.autograd.Function):
    """``gates._HardConcrete`` with one temperature per member, op for op the same float32
    arithmetic (β and (ζ − γ)/β rounded from float64 like the single layer's Python floats),
    so fused gates match single ones bit for bit."""

    @staticmethod
    def forward(
        ctx: Any,
        log_alpha: Tensor,
        noise: Tensor,
        beta: Tensor,
        slope: Tensor,
        gamma: float,
        zeta: float,
    ) -> Tensor:
        s = torch.sigmoid((noise + log_alpha) / beta)
        z = (s * (zeta - gamma)).add_(gamma).clamp_(0.0, 1.0)
        ctx.save_for_backward(s, slope)
        ctx.constants = (gamma, zeta)
        ctx.alpha_shape = log_alpha.shape
        return z

    @staticmethod
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor | None, None, None, None, None, None]:
        s, slope = ctx.saved_tensors
        gamma, zeta = ctx.constants
        s_bar = s * (zeta - gamma) + gamma
        inside = (s_bar > 0) & (s_bar < 1)
        grad = (grad_z * s * (1 - s) * slope).masked_fill_(~inside, 0.0)
        for dim, size in enumerate(ctx.alpha_shape):
            if size == 1 and grad.shape[dim] != 1:  # per-example noise: sum over the batch
                grad = grad.sum(dim, keepdim=True)
        return grad, None, None, None, None, None


class _GatedInputLinear(torch.autograd.Function):
    """Training forward of a stacked linear layer fed by data x (K, B, in) that needs no
    gradient, with one gate per member and input z (K, in): returns (x ⊙ z) Wᵀ + b and the
    column squares Σ_out W² (K, in) that its L2 penalty needs.

    Autograd would run two batched matmuls backward (∂W = gᵀ(x ⊙ z) and ∂(x ⊙ z) = g W, the
    latter only for ∂z). Both follow from one product M = gᵀx (K, out, in): ∂W = M ⊙ z and
    ∂z = Σ_out M ⊙ W; the penalty's ∂W = 2·W·∂sq is added in place. For the first layer of an
    MLP (88 % of the FLOPs of 784-300-100) this is one matmul and several passes over K×
    the weights fewer per step; the identities are exact up to float summation order.
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, z: Tensor, weight: Tensor, bias: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        ctx.save_for_backward(x, z, weight)
        ctx.has_bias = bias is not None
        xz = x * z[:, None, :]
        w_t = weight.transpose(1, 2)
        out = torch.bmm(xz, w_t) if bias is None else torch.baddbmm(bias[:, None, :], xz, w_t)
        return out, torch.linalg.vecdot(weight, weight, dim=1)

    @staticmethod
    def backward(
        ctx: Any, g: Tensor, g_sq: Tensor | None
    ) -> tuple[None, Tensor, Tensor, Tensor | None]:
        x, z, weight = ctx.saved_tensors
        m = torch.bmm(g.transpose(1, 2), x)  # (K, out, in)
        grad_z = torch.linalg.vecdot(m, weight, dim=1)
        grad_w = m.mul_(z[:, None, :])
        if g_sq is not None:
            grad_w.addcmul_(weight, g_sq[:, None, :], value=2.0)
        grad_b = g.sum(1) if ctx.has_bias else None
        return None, grad_z, grad_w, grad_b


class _ColumnSquares(torch.autograd.Function):
    """Σ_out W² per member and input column (K, in) in one pass; backward 2·W·g in one."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor) -> Tensor:
        ctx.save_for_backward(weight)
        return torch.linalg.vecdot(weight, weight, dim=1)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        (weight,) = ctx.saved_tensors
        return weight * (2.0 * g)[:, None, :]


class StackedL0Layer(nn.Module):
    """Gate state of K stacked L0 layers: ``log_alpha`` (K, G), per-member ``beta``/``lam``/
    ``wd`` (weight decay)."""

    log_alpha: nn.Parameter
    weight: nn.Parameter
    bias: nn.Parameter | None
    beta: Tensor
    lam: Tensor
    wd: Tensor
    pnz_shift: Tensor
    slope: Tensor

    def __init__(self, layers: Sequence[L0Layer]) -> None:
        super().__init__()
        first = layers[0]
        self.k = len(layers)
        self.gamma = first.gate.gamma
        self.zeta = first.gate.zeta
        # Per-member weight decay; not state: it comes from the members' settings.
        self.any_weight_decay = any(m.weight_decay > 0 for m in layers)
        self.n_train = first.n_train
        self.local_rep = first.local_rep
        # Same registration order as L0Layer: log_alpha, then weight, bias.
        self.log_alpha = nn.Parameter(torch.stack([m.log_alpha.detach() for m in layers]))
        self.register_buffer("beta", torch.tensor([[m.gate.beta] for m in layers]))
        # Per-member constants computed in float64 as the single layer computes them.
        shift = [[m.gate.beta * math.log(-m.gate.gamma / m.gate.zeta)] for m in layers]
        slope = [[(m.gate.zeta - m.gate.gamma) / m.gate.beta] for m in layers]
        self.register_buffer("pnz_shift", torch.tensor(shift), persistent=False)
        self.register_buffer("slope", torch.tensor(slope), persistent=False)
        self.register_buffer("lam", torch.tensor([[m.lam] for m in layers]))
        wd = [[m.weight_decay] for m in layers]
        self.register_buffer("wd", torch.tensor(wd), persistent=False)
        weights = [cast(Tensor, m.weight).detach() for m in layers]
        biases = [cast("Tensor | None", m.bias) for m in layers]
        self.weight = nn.Parameter(torch.stack(weights))
        self.bias = (
            None
            if any(b is None for b in biases)
            else nn.Parameter(torch.stack([b.detach() for b in biases if b is not None]))
        )
        self.to(first.log_alpha.device)

    @property
    def n_groups(self) -> int:
        return int(self.log_alpha.shape[1])

    def noise_shape(self, batch: int) -> tuple[int, ...]:
        """Per-member shape of one training step's logistic noise, as the single layer draws it."""
        return (batch, self.n_groups) if self.local_rep else (self.n_groups,)

    def gates(self, noise: Tensor | None) -> Tensor:
        """Training gates from ``noise`` (K, G) or (K, B, G); test-time gates (K, G) if None."""
        if noise is None:
            return _test_time_gate(self.log_alpha, self.gamma, self.zeta)
        la: Tensor = self.log_alpha
        beta, slope = self.beta, self.slope
        if noise.dim() == 3:  # per-example noise (K, B, G)
            la, beta, slope = la[:, None, :], beta[:, :, None], slope[:, :, None]
        z = _StackedHardConcrete.apply(la, noise, beta, slope, self.gamma, self.zeta)
        return cast(Tensor, z)

    def prob_nonzero(self) -> Tensor:  # (K, G)
        # σ(log α − β·log(−γ/ζ)), the shift rounded from float64 as in gates.prob_nonzero.
        return torch.sigmoid(self.log_alpha - self.pnz_shift)

    def group_squares(self) -> Tensor:  # (K, G): Σ_{j∈g} θ_j²
        raise NotImplementedError

    def group_sizes(self) -> int:
        raise NotImplementedError

    def ungrouped_l2(self) -> Tensor:  # (K,)
        return self.log_alpha.new_zeros(self.k)

    def penalty(self, squares: Tensor | None = None) -> Tensor:
        """Each member's DESIGN §3 penalty for this layer, shape (K,): Σ_g P_g·Σ_{j∈g}(½·wd·θ_j²
        + λ/N) plus ½·wd·θ² of ungrouped parameters. ``squares``: precomputed group squares."""
        cost = self.group_sizes() * self.lam / self.n_train  # (K, 1)
        if self.any_weight_decay:
            sq = self.group_squares() if squares is None else squares
            cost = cost + 0.5 * self.wd * sq
        return (self.prob_nonzero() * cost).sum(1) + self.ungrouped_l2()

    def forward_train(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """Training forward with gate noise: (output, this layer's penalty (K,))."""
        return self(x, noise), self.penalty()

    def clamp_(self) -> None:
        clamp_log_alpha_(self.log_alpha)


class StackedL0Linear(StackedL0Layer):
    """K ``L0Linear`` layers: (K, B, in) → (K, B, out) with one batched matmul."""

    def __init__(self, layers: Sequence[L0Linear]) -> None:
        super().__init__(layers)
        self.in_features = layers[0].in_features
        self.out_features = layers[0].out_features

    def group_squares(self) -> Tensor:
        # Group j = column j of W (every weight leaving input neuron j).
        return cast(Tensor, _ColumnSquares.apply(self.weight))  # (K, in)

    def group_sizes(self) -> int:
        return self.out_features

    def ungrouped_l2(self) -> Tensor:
        if self.bias is None or not self.any_weight_decay:
            return self.weight.new_zeros(self.k)
        return 0.5 * self.wd[:, 0] * self.bias.pow(2).sum(1)

    def forward_train(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        if noise.dim() == 2 and not x.requires_grad:
            z = self.gates(noise)
            out, sq = _GatedInputLinear.apply(x, z, self.weight, self.bias)
            return out, self.penalty(sq)
        return self(x, noise), self.penalty()

    def forward(self, x: Tensor, noise: Tensor | None) -> Tensor:
        z = self.gates(noise)  # (K, in) or (K, B, in)
        xz = x * (z[:, None, :] if z.dim() == 2 else z)  # (K, B, in)
        w_t = self.weight.transpose(1, 2)  # (K, in, out)
        if self.bias is None:
            return torch.bmm(xz, w_t)
        return torch.baddbmm(self.bias[:, None, :], xz, w_t)  # (K, B, out)


class StackedL0Conv2d(StackedL0Layer):
    """K ``L0Conv2d`` layers as one grouped convolution on (B, K·C_in, H, W) inputs."""

    def __init__(self, layers: Sequence[L0Conv2d]) -> None:
        super().__init__(layers)
        first = layers[0]
        self.in_channels = first.in_channels
        self.out_channels = first.out_channels
        self.stride = first.stride
        self.padding = first.padding

    def group_squares(self) -> Tensor:
        # Group c = output map c: its filter weights and its bias.
        per_map = self.weight.pow(2).flatten(2).sum(2)  # (K, C_out)
        return per_map if self.bias is None else per_map + self.bias.pow(2)

    def group_sizes(self) -> int:
        return self.weight[0, 0].numel() + (self.bias is not None)

    def forward(self, x: Tensor, noise: Tensor | None) -> Tensor:
        # (B, K·C_in, H, W) -> (B, K·C_out, H', W')
        z = self.gates(noise)
        kc = self.k * self.out_channels
        w_shape = (kc, self.in_channels, *self.weight.shape[3:])
        if z.dim() == 2:
            # One gate per map and member: scale the filters, as L0Conv2d does.
            w = (self.weight * z[:, :, None, None, None]).reshape(w_shape)
            b = None if self.bias is None else (self.bias * z).reshape(kc)
            return F.conv2d(x, w, b, self.stride, self.padding, groups=self.k)
        b = None if self.bias is None else self.bias.reshape(kc)
        y = F.conv2d(x, self.weight.reshape(w_shape), b, self.stride, self.padding, groups=self.k)
        zb = z.transpose(0, 1).reshape(x.shape[0], kc)  # (K, B, C) -> (B, K·C)
        return y * zb[:, :, None, None]
