"""Hard-concrete gates (Louizos, Welling & Kingma 2018, §3), as plain tensor functions.

Every function broadcasts, so a stacked ``(K, ...)`` implementation (the fused trainer) can
call them with ``log_alpha`` of shape ``(K, G)`` and ``beta`` of shape ``(K, 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "EPS",
    "LOG_ALPHA_MAX",
    "LOG_ALPHA_MIN",
    "GateConfig",
    "clamp_log_alpha_",
    "gate_from_noise_",
    "hard_concrete",
    "init_log_alpha_",
    "logistic_noise",
    "prob_nonzero",
    "sample_gate",
    "test_time_gate",
]

# Clamp range for log α after each optimiser step (DESIGN §3).
LOG_ALPHA_MIN = math.log(0.01)
LOG_ALPHA_MAX = math.log(100.0)
# u ~ U(EPS, 1 - EPS) keeps log u and log(1 - u) finite.
EPS = 1e-6


@dataclass(frozen=True)
class GateConfig:
    """Hard-concrete constants: temperature ``beta`` and stretch interval (gamma, zeta)."""

    beta: float = 2.0 / 3.0
    gamma: float = -0.1
    zeta: float = 1.1

    def __post_init__(self) -> None:
        beta = self.beta
        if not (isinstance(beta, (int, float)) and math.isfinite(beta)) or beta <= 0:
            raise ValueError(f"gate temperature beta must be a finite number > 0, got {beta!r}")
        if not self.gamma < 0:
            raise ValueError(f"gate stretch gamma must be < 0, got {self.gamma!r}")
        if not self.zeta > 1:
            raise ValueError(f"gate stretch zeta must be > 1, got {self.zeta!r}")


def logistic_noise(
    shape: tuple[int, ...] | torch.Size,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``log u - log(1 - u)`` with ``u ~ U(EPS, 1 - EPS)``: the logistic noise of one sample."""
    u = torch.empty(shape, device=device, dtype=dtype).uniform_(EPS, 1.0 - EPS, generator=generator)
    return u.logit_()


class _HardConcrete(torch.autograd.Function):
    """z = clamp(σ((L + log α)/β)(ζ − γ) + γ, 0, 1) with one saved tensor and gradients by hand.

    Autograd through the elementwise ops would save several full-size tensors and run twice
    as many kernels; the per-example mode samples a (B, G) gate per layer, so this matters.
    ``kind``: "logistic" (noise read only), "logistic!" (logistic noise whose buffer may be
    overwritten) or "uniform!" (u ~ U(ε, 1 − ε), turned into logistic noise in its buffer).
    """

    @staticmethod
    def forward(
        ctx: Any,
        log_alpha: Tensor,
        noise: Tensor,
        beta: float,
        gamma: float,
        zeta: float,
        kind: str,
    ) -> Tensor:
        if kind == "uniform!":
            s = noise.logit_().add_(log_alpha).div_(beta).sigmoid_()
        elif kind == "logistic!":
            s = noise.add_(log_alpha).div_(beta).sigmoid_()
        else:
            s = torch.sigmoid((noise + log_alpha) / beta)
        z = torch.clamp(s * (zeta - gamma) + gamma, 0.0, 1.0)
        ctx.save_for_backward(s)
        ctx.constants = (beta, gamma, zeta)
        ctx.alpha_shape = log_alpha.shape
        return z

    @staticmethod
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor | None, None, None, None, None, None]:
        (s,) = ctx.saved_tensors
        beta, gamma, zeta = ctx.constants
        # dz/dlogα = (ζ − γ)/β · s(1 − s) where 0 < s̄ < 1, i.e. -γ/(ζ-γ) < s < (1-γ)/(ζ-γ).
        lo, hi = -gamma / (zeta - gamma), (1.0 - gamma) / (zeta - gamma)
        grad = torch.addcmul(s, s, s, value=-1.0).mul_(grad_z).mul_((zeta - gamma) / beta)
        grad = grad.mul_((s > lo) & (s < hi))
        shape = ctx.alpha_shape
        # Reduce the broadcast (e.g. batch) dimensions back to log α's shape.
        if grad.dim() > len(shape):
            grad = grad.sum(tuple(range(grad.dim() - len(shape))))
        keep = [d for d, size in enumerate(shape) if size == 1 and grad.shape[d] != 1]
        if keep:
            grad = grad.sum(keep, keepdim=True)
        return grad, None, None, None, None, None


def hard_concrete(
    log_alpha: Tensor, noise: Tensor, beta: float | Tensor, gamma: float = -0.1, zeta: float = 1.1
) -> Tensor:
    """Training gate from given logistic noise (broadcasts ``log_alpha`` against ``noise``).

    ``beta`` may be a float or a tensor broadcastable to the result (stacked models with one
    temperature each); tensors take the plain autograd path.
    """
    if isinstance(beta, Tensor):
        s = torch.sigmoid((noise + log_alpha) / beta)
        return (s * (zeta - gamma) + gamma).clamp(0.0, 1.0)
    return _HardConcrete.apply(log_alpha, noise, float(beta), float(gamma), float(zeta), "logistic")


def gate_from_noise_(log_alpha: Tensor, noise: Tensor, gate: GateConfig) -> Tensor:
    """Training gate from logistic ``noise`` of shape ``log_alpha.shape`` or (B, G) per
    example, computed in ``noise``'s buffer (it is consumed: the trainers' counter noise)."""
    return _HardConcrete.apply(log_alpha, noise, gate.beta, gate.gamma, gate.zeta, "logistic!")


def sample_gate(
    log_alpha: Tensor,
    gate: GateConfig,
    *,
    batch: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One hard-concrete sample per gate, shape ``log_alpha.shape``, or
    ``(batch, *log_alpha.shape)`` when ``batch`` is given (per-example noise)."""
    shape = log_alpha.shape if batch is None else (batch, *log_alpha.shape)
    u = torch.empty(shape, device=log_alpha.device, dtype=log_alpha.dtype)
    u.uniform_(EPS, 1.0 - EPS, generator=generator)
    return _HardConcrete.apply(log_alpha, u, gate.beta, gate.gamma, gate.zeta, "uniform!")


def prob_nonzero(
    log_alpha: Tensor, beta: float | Tensor, gamma: float = -0.1, zeta: float = 1.1
) -> Tensor:
    """P(z ≠ 0) = σ(log α − β·log(−γ/ζ)): the expected L0 norm of each gate."""
    return torch.sigmoid(log_alpha - beta * math.log(-gamma / zeta))


def test_time_gate(log_alpha: Tensor, gamma: float = -0.1, zeta: float = 1.1) -> Tensor:
    """Deterministic gate of Eq. 13: ẑ = min(1, max(0, σ(log α)(ζ − γ) + γ)); no β, no noise."""
    return (torch.sigmoid(log_alpha) * (zeta - gamma) + gamma).clamp(0.0, 1.0)


test_time_gate.__test__ = False  # type: ignore[attr-defined]  # not a pytest test function


@torch.no_grad()
def init_log_alpha_(
    log_alpha: Tensor, droprate: float, *, generator: torch.Generator | None = None
) -> Tensor:
    """Fill with N(log(1 − p) − log p, 0.01²) for a droprate ``p`` in (0, 1); in place."""
    if not 0.0 < droprate < 1.0:
        raise ValueError(f"droprate_init must be in (0, 1), got {droprate!r}")
    mean = math.log(1.0 - droprate) - math.log(droprate)
    return log_alpha.normal_(mean, 0.01, generator=generator)


@torch.no_grad()
def clamp_log_alpha_(log_alpha: Tensor) -> Tensor:
    """Clamp to [ln 0.01, ln 100] in place (done after every optimiser step)."""
    return log_alpha.clamp_(LOG_ALPHA_MIN, LOG_ALPHA_MAX)
