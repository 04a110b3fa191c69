"""``ParamEMA``: an exponential moving average of a model's parameters (weight averaging), as
the authors' MLP (decay 0.999) and wide-ResNet (0.99) code evaluates it.

Zero start with bias correction: m₀ = 0, m_t = d·m_{t−1} + (1 − d)·θ_t after step t, and the
average is m_t / (1 − dᵗ) = Σ_{i=1..t} w_i·θ_i with w_i = (1 − d)·d^{t−i} / (1 − dᵗ): weights
that sum to exactly 1 and sit on the trained iterates θ₁…θ_t only (after one step the
average is θ₁). Why not start at θ₀ without correction: that average keeps weight dᵗ on the
random initialisation (0.55 after the MLP's first epoch of 600 steps at d = 0.999), which
drags early evaluations, and log α, back towards the init. The authors' variant (start at θ₀
*and* divide by 1 − dᵗ) has weights summing to 1 / (1 − dᵗ) > 1 and over-scales every
parameter early on: not copied.

Elementwise, so a fused pack's stacked (K, ...) parameters average member by member. Every
parameter is averaged (log α included); buffers (batch-norm statistics) are not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ParamEMA", "averaged"]


class ParamEMA:
    """The bias-corrected EMA of ``named_parameters``, updated by :meth:`update` after each
    optimiser step (and log α clamp).

    Args:
        named_parameters: ``module.named_parameters()`` of the trained model.
        decay: d in [0, 1); 0 keeps the last iterate.
    """

    def __init__(self, named_parameters: Iterable[tuple[str, nn.Parameter]], decay: float) -> None:
        decay = float(decay)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay!r}")
        self.decay = decay
        named = list(named_parameters)
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [torch.zeros_like(p).detach() for p in self.params]  # m_t
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        """m_t = d·m_{t−1} + (1 − d)·θ_t for every parameter."""
        self.steps += 1
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - self.decay)

    def correction(self) -> float:
        """1 − dᵗ (in float64); the average is m_t divided by it."""
        return 1.0 - self.decay**self.steps

    @torch.no_grad()
    def averaged(self) -> dict[str, Tensor]:
        """The averaged parameters by name (the current ones before the first update)."""
        if self.steps == 0:
            return {n: p.detach().clone() for n, p in zip(self.names, self.params, strict=True)}
        c = self.correction()
        return {n: m / c for n, m in zip(self.names, self.shadow, strict=True)}

    @torch.no_grad()
    def copy_to_params(self) -> None:
        """Overwrite the live parameters with the averaged ones (for good)."""
        avg = self.averaged()
        for name, p in zip(self.names, self.params, strict=True):
            p.copy_(avg[name])

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Inside the block the parameters hold their averages; the raw ones come back after."""
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
            self.copy_to_params()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(self.params, saved, strict=True):
                    p.copy_(s)

    def state_dict(self) -> dict[str, Any]:
        """CPU copy: ``{"decay", "steps", "shadow": {name: m_t}}``."""
        return {
            "decay": self.decay,
            "steps": self.steps,
            "shadow": {
                n: m.detach().to("cpu", copy=True)
                for n, m in zip(self.names, self.shadow, strict=True)
            },
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` of the same parameters and decay."""
        if float(state["decay"]) != self.decay:
            raise ValueError(f"ema state has decay {state['decay']}, not {self.decay}")
        shadow = state["shadow"]
        if list(shadow) != self.names:
            raise ValueError("ema state holds other parameters than this model's")
        for m, name in zip(self.shadow, self.names, strict=True):
            m.copy_(shadow[name])
        self.steps = int(state["steps"])


def averaged(ema: ParamEMA | None) -> contextlib.AbstractContextManager[None]:
    """``ema.swapped()``, or a no-op without an EMA."""
    return contextlib.nullcontext() if ema is None else ema.swapped()
