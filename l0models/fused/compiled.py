"""The fused training step with fewer kernel launches: ``torch.compile``.

A fused step at K = 256 is a few hundred small kernels (gates, penalty, cross-entropy,
their backward), each launched from Python; on a GPU the launches, not the FLOPs, bound
it. ``compiled_train_step`` compiles the members' forward and loss with its backward
(AOTAutograd) into a few fused kernels, in mode ``"reduce-overhead"`` on CUDA: the kernels
of each graph replay as one CUDA graph; on CUDA the gate noise's Philox blocks are compiled
too (``l0models.noise.compile_uniforms``: one kernel per layer and chunk). The optimiser
(fused Adam: one kernel for all parameters) and the log α clamp stay eager. The numbers
are the eager step's up to float reordering (fused elementwise kernels).

On the CPU compiling needs a C++ compiler and tens of seconds per process; it is used there
only when asked for (``compile=True``), see ``docs/benchmarks.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from l0models.fused.models import FusedL0Model
from l0models.noise import compile_uniforms

__all__ = ["StepFn", "compiled_train_step", "member_losses", "use_compile"]

StepFn = Callable[[Tensor, Tensor, Sequence[Tensor]], Tensor]


def use_compile(compile: bool | None, device: torch.device) -> bool:
    """``compile`` as asked; None: off on every device.

    Opt-in only: on an H200 the compiled step (CUDA graphs) closed every gate of an MLP
    pack within 10 epochs (88.65 % error, 0-0-0 kept) where the eager step trained normally
    (docs/paper.md); until that is understood, the eager step is the default everywhere.
    """
    del device  # kept in the signature: the rule may depend on the device again
    return bool(compile)


def member_losses(fused: FusedL0Model, x: Tensor, y: Tensor, noises: Sequence[Tensor]) -> Tensor:
    """Each member's objective (K,): mean cross-entropy on its batch + its penalty."""
    k, b = y.shape
    logits, penalty = fused.forward_train(x, noises)  # (K, B, C), (K,)
    ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(k, b)
    return ce.mean(1) + penalty


def compiled_train_step(
    fused: FusedL0Model, optimizer: torch.optim.Optimizer, device: torch.device
) -> StepFn:
    """``fused_train_step(fused, optimizer, ...)`` with the forward, loss and backward
    compiled (``"reduce-overhead"``, i.e. CUDA graphs, on CUDA; inductor's default on the
    CPU). Shapes are static: the epoch's last, smaller batch compiles once more."""
    mode = "reduce-overhead" if device.type == "cuda" else "default"
    if device.type == "cuda":
        compile_uniforms()
    losses: list[Callable[..., Tensor]] = [torch.compile(member_losses, mode=mode, dynamic=False)]

    def step(x: Tensor, y: Tensor, noises: Sequence[Tensor]) -> Tensor:
        if device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        try:
            member_loss = losses[0](fused, x, y, noises)
        except Exception as exc:  # no compiler, or it failed: the eager step is the same
            if losses[0] is member_losses:
                raise
            warnings.warn(
                f"compiling the fused step failed, running it eagerly: {exc!r:.300}", stacklevel=2
            )
            losses[0] = member_losses
            member_loss = member_losses(fused, x, y, noises)
        optimizer.zero_grad(set_to_none=True)
        member_loss.sum().backward()
        optimizer.step()
        fused.clamp_log_alpha_()
        # A CUDA graph's outputs are overwritten by its next replay: keep a copy.
        return member_loss.detach().clone()

    return step
